"""Linear probe, kNN and retrieval against numpy oracles written here."""

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from mvhybrid_jax.eval import classification as cl


def data(n=300, dim=16, classes=4, spread=1.0, seed=0):
  rng = np.random.default_rng(seed)
  centres = rng.standard_normal((classes, dim)) * 3
  y = rng.integers(0, classes, n)
  x = centres[y] + spread * rng.standard_normal((n, dim)) + 5.0  # off-centre on purpose
  return x[:200], y[:200], x[200:], y[200:]


def unit(v, mean):
  v = v - mean
  return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_linear_probe_rule_and_separable_data():
  assert cl.linear_c(384, 9) == pytest.approx(34.56)
  r = cl.linear_probe(*data(spread=0.1))
  assert r["balanced_accuracy"] == 1.0 and r["weighted_f1"] == 1.0 and r["auroc"] == 1.0
  noisy = cl.linear_probe(*data(spread=4.0))
  assert 0.3 < noisy["balanced_accuracy"] < 1.0


def test_knn_matches_numpy():
  tx, ty, qx, qy = data(spread=3.0, seed=1)
  mean = tx.mean(0)
  a, b = unit(tx, mean), unit(qx, mean)
  dist = ((b[:, None, :] - a[None]) ** 2).sum(-1)
  nearest = np.argsort(dist, axis=1, kind="stable")[:, :20]
  pred = np.array([np.bincount(ty[row], minlength=4).argmax() for row in nearest])
  r = cl.knn(tx, ty, qx, qy, k=20)
  assert r["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(qy, pred))
  assert 0.3 < r["balanced_accuracy"] < 1.0


def test_retrieval_matches_numpy():
  tx, ty, qx, qy = data(spread=3.0, seed=2)
  mean = tx.mean(0)
  a, b = unit(tx, mean), unit(qx, mean)
  order = np.argsort(-(b @ a.T), axis=1, kind="stable")
  r = cl.retrieval(tx, ty, qx, qy)
  for k in (1, 3, 5):
    want = np.mean([qy[i] in ty[order[i, :k]] for i in range(len(qy))])
    assert r[f"acc@{k}"] == pytest.approx(want)
  assert r["acc@1"] <= r["acc@3"] <= r["acc@5"]
  votes = np.array([np.bincount(ty[order[i, :5]], minlength=4).argmax() for i in range(len(qy))])
  assert r["mv@5"] == pytest.approx((votes == qy).mean())
  protos = np.stack([a[ty == c].mean(0) for c in range(4)])
  protos /= np.linalg.norm(protos, axis=1, keepdims=True)
  want = balanced_accuracy_score(qy, np.argmax(b @ protos.T, axis=1))
  assert r["prototype_acc"] == pytest.approx(want)


def test_auroc_with_classes_missing_from_test():
  tx, ty, qx, qy = data(spread=0.5, seed=3)
  keep = qy != 2  # class 2 only in training
  r = cl.linear_probe(tx, ty, qx[keep], qy[keep])
  assert r["auroc"] > 0.99


def test_bad_input():
  tx, ty, qx, qy = data()
  with pytest.raises(ValueError, match=r"test classes \[7\] have no training examples"):
    cl.knn(tx, ty, qx, np.full_like(qy, 7))
  with pytest.raises(ValueError, match="at least 2 classes"):
    cl.linear_probe(tx, np.zeros_like(ty), qx, np.zeros_like(qy))
  with pytest.raises(ValueError, match="same number of rows"):
    cl.retrieval(tx, ty[:5], qx, qy)
