"""Patch classification and retrieval on frozen embeddings (spec section 4's usual conventions).

- Linear probe: L2-regularised logistic regression, L-BFGS, on standardised features, with
  C = dim * n_classes / 100 (regularisation strength 100 / (dim * n_classes)).
- kNN: k = 20, uniform vote, on features centred by the training mean and L2-normalised.
- Metrics: balanced accuracy, weighted F1, AUROC (one-vs-rest, macro; binary: the positive class).
- Retrieval (test queries against the training set as the database, cosine similarity of centred,
  L2-normalised features): Acc@k = the fraction of queries with the right class among the k
  nearest; majority vote @5; and zero-shot prototype retrieval: each class's prototype is the
  normalised mean of its training embeddings, a query takes the class of its nearest prototype.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler


def linear_c(dim: int, n_classes: int) -> float:
  return dim * n_classes / 100.0


def _check(train_x, train_y, test_x, test_y):
  if len(train_x) != len(train_y) or len(test_x) != len(test_y):
    raise ValueError("features and labels: expected the same number of rows")
  missing = sorted(set(np.unique(test_y).tolist()) - set(np.unique(train_y).tolist()))
  if missing:
    raise ValueError(f"labels: test classes {missing} have no training examples")
  if len(np.unique(train_y)) < 2:
    raise ValueError("labels: expected at least 2 classes in training")


def scores(y_true, y_pred, proba, classes) -> dict:
  out = dict(balanced_accuracy=float(balanced_accuracy_score(y_true, y_pred)),
             weighted_f1=float(f1_score(y_true, y_pred, average="weighted")))
  present = np.unique(y_true)
  if len(present) < 2:
    out["auroc"] = float("nan")
  elif len(classes) == 2:
    out["auroc"] = float(roc_auc_score(y_true == classes[1], proba[:, 1]))
  else:  # restricted to the classes present in the test set, renormalised
    cols = np.searchsorted(classes, present)
    p = proba[:, cols] / np.clip(proba[:, cols].sum(1, keepdims=True), 1e-12, None)
    out["auroc"] = float(roc_auc_score(y_true, p, multi_class="ovr", labels=present))
  return out


def linear_probe(train_x, train_y, test_x, test_y, *, max_iter: int = 1000) -> dict:
  _check(train_x, train_y, test_x, test_y)
  scaler = StandardScaler().fit(train_x)
  classes = np.unique(train_y)
  clf = LogisticRegression(C=linear_c(train_x.shape[1], len(classes)), solver="lbfgs",
                           max_iter=max_iter).fit(scaler.transform(train_x), train_y)
  z = scaler.transform(test_x)
  return scores(test_y, clf.predict(z), clf.predict_proba(z), clf.classes_)


def centre_and_unit(train_x, test_x):
  """Centred by the training mean, then L2-normalised."""
  mean = train_x.mean(0)
  unit = lambda v: (v - mean) / np.clip(np.linalg.norm(v - mean, axis=1, keepdims=True), 1e-12,
                                        None)
  return unit(train_x), unit(test_x)


def knn(train_x, train_y, test_x, test_y, *, k: int = 20) -> dict:
  _check(train_x, train_y, test_x, test_y)
  a, b = centre_and_unit(train_x, test_x)
  clf = KNeighborsClassifier(n_neighbors=min(k, len(a))).fit(a, train_y)
  return scores(test_y, clf.predict(b), clf.predict_proba(b), clf.classes_)


def retrieval(train_x, train_y, test_x, test_y, *, ks=(1, 3, 5)) -> dict:
  _check(train_x, train_y, test_x, test_y)
  a, b = centre_and_unit(train_x, test_x)
  train_y, test_y = np.asarray(train_y), np.asarray(test_y)
  order = np.argsort(-(b @ a.T), axis=1, kind="stable")[:, :max(max(ks), 5)]  # nearest first
  hits = train_y[order] == test_y[:, None]
  out = {f"acc@{k}": float(hits[:, :k].any(1).mean()) for k in ks}
  votes = [np.unique(row[:5], return_counts=True) for row in train_y[order]]
  majority = np.array([vals[np.argmax(counts)] for vals, counts in votes])  # ties: lowest label
  out["mv@5"] = float((majority == test_y).mean())
  classes = np.unique(train_y)
  protos = np.stack([a[train_y == c].mean(0) for c in classes])
  protos /= np.clip(np.linalg.norm(protos, axis=1, keepdims=True), 1e-12, None)
  out["prototype_acc"] = float(balanced_accuracy_score(test_y, classes[np.argmax(b @ protos.T,
                                                                                 axis=1)]))
  return out
