"""Metrics against scipy/scikit-learn, and the protocols' splits."""

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import mean_absolute_error, mean_squared_error

from mvhybrid_jax.eval import gene_expression as ge


def test_metrics_match_scipy_and_sklearn():
  rng = np.random.default_rng(1)
  y = rng.standard_normal((50, 30))
  pred = y + rng.standard_normal((50, 30)) * np.linspace(0.1, 3, 30)
  pred[:, 3] = 1.0  # a constant prediction has no correlation: left out
  m, r = ge.metrics(y, pred)
  want = np.array([stats.pearsonr(y[:, g], pred[:, g])[0] if g != 3 else np.nan
                   for g in range(30)])
  np.testing.assert_allclose(r, want, rtol=1e-10)
  valid = np.sort(want[np.isfinite(want)])[::-1]
  assert m["pcc"] == pytest.approx(valid.mean()) and m["pcc10"] == pytest.approx(valid[:10].mean())
  assert m["mae"] == pytest.approx(mean_absolute_error(y, pred))
  assert m["mse"] == pytest.approx(mean_squared_error(y, pred))


def groups(n=120):
  """3 studies x 2 patients x 2 slides."""
  study = np.repeat(["A", "B", "C"], n // 3)
  patient = np.array([f"{s}{i % 2}" for i, s in enumerate(study)])
  slide = np.array([f"{p}-{(i // 2) % 2}" for i, p in enumerate(patient)])
  return study, patient, slide


def test_protocol_splits():
  """Every spot is tested once; no slide (nor, for loso and patient, patient) on both sides."""
  study, patient, slide = groups()
  n = len(study)
  for protocol, k, n_folds in (("random", 10, 10), ("random", 20, 12), ("loso", 10, 3),
                               ("patient", 4, 4)):
    splits = ge.folds(protocol, n, slide=slide, study=study, patient=patient, k=k)
    assert len(splits) == n_folds
    tested = np.concatenate([test for _, test in splits])
    assert sorted(tested) == list(range(n))
    for train, test in splits:
      assert not set(slide[test]) & set(slide[train])
      if protocol != "random":
        assert not set(patient[test]) & set(patient[train])
      if protocol == "loso":
        assert len(set(study[test])) == 1 and not set(study[test]) & set(study[train])
  random_studies = [len(set(study[test])) for _, test in ge.folds("random", n, slide=slide, k=4)]
  assert max(random_studies) > 1  # random folds mix studies
  with pytest.raises(ValueError, match="random: needs at least 2 slides"):
    ge.folds("random", 4, slide=["s"] * 4)
  with pytest.raises(ValueError, match="loso: needs at least 2 studies"):
    ge.folds("loso", 4, study=["A"] * 4)
  with pytest.raises(ValueError, match="protocol: expected one of"):
    ge.folds("slide", 4)


def test_linear_features_give_pcc_near_one_and_shuffled_near_zero():
  rng = np.random.default_rng(2)
  study, patient, slide = groups(300)
  feats = rng.standard_normal((300, 16))
  logs = feats @ rng.standard_normal((16, 12)) + 30.0  # log1p(counts), linear in the features
  counts = np.expm1(logs)
  for protocol in ("random", "loso", "patient"):
    r = ge.evaluate(feats, counts, protocol, slide=slide, study=study, patient=patient, k=5)
    assert r["mean"]["pcc"] > 0.99, (protocol, r["mean"])
  shuffled = counts[rng.permutation(300)]
  r = ge.evaluate(feats, shuffled, "random", k=5)
  assert abs(r["mean"]["pcc"]) < 0.1
  assert len(r["per_gene_pcc"]) == 12 and len(r["folds"]) == 5


def test_loso_folds_name_their_study_and_drop():
  rng = np.random.default_rng(3)
  study, _, _ = groups()
  r = ge.evaluate(rng.standard_normal((120, 8)), rng.poisson(3, (120, 4)), "loso", study=study)
  assert [f["test_groups"] for f in r["folds"]] == [["A"], ["B"], ["C"]]
  d = ge.drop({"pcc": 0.4, "pcc10": 0.8, "mae": 1.0, "mse": 2.0},
              {"pcc": 0.3, "pcc10": 0.6, "mae": 1.5, "mse": 3.0})
  assert d == pytest.approx({"pcc": 0.25, "pcc10": 0.25, "mae": 0.5, "mse": 0.5})


def test_bad_input():
  with pytest.raises(ValueError, match="features: 3 spots but counts has 4"):
    ge.evaluate(np.zeros((3, 2)), np.zeros((4, 2)), "random")
  with pytest.raises(ValueError, match="counts: expected finite, non-negative"):
    ge.evaluate(np.zeros((4, 2)), -np.ones((4, 2)), "random")
