"""C-index, Cox partial likelihood and the cross-validated survival models against oracles
written here."""

import numpy as np
import pytest
from scipy import optimize

from mvhybrid_jax.eval import survival


def c_index_loop(time, event, risk):
  num = den = 0.0
  for i in range(len(time)):
    for j in range(len(time)):
      if event[i] and time[i] < time[j]:
        den += 1
        num += 1.0 if risk[i] > risk[j] else 0.5 if risk[i] == risk[j] else 0.0
  return num / den


def test_concordance_index():
  rng = np.random.default_rng(0)
  time = rng.integers(1, 20, 60).astype(float)  # with ties
  event = rng.random(60) < 0.6
  risk = np.round(rng.standard_normal(60), 1)  # with ties
  assert survival.concordance_index(time, event, risk) == pytest.approx(
      c_index_loop(time, event, risk))
  assert survival.concordance_index(time, np.ones(60), -time) == 1.0
  assert survival.concordance_index(time, np.ones(60), time) == 0.0
  assert np.isnan(survival.concordance_index([1.0, 2.0], [False, False], [0.1, 0.2]))


def breslow_loop(beta, x, time, event, l2):
  eta = x @ beta
  total = 0.0
  for i in np.flatnonzero(event):
    total += eta[i] - np.log(np.exp(eta[time >= time[i]]).sum())
  return -total / event.sum() + 0.5 * l2 * beta @ beta


def test_cox_loss_and_gradient():
  rng = np.random.default_rng(1)
  x = rng.standard_normal((40, 3))
  time = rng.integers(1, 10, 40).astype(float)
  event = rng.random(40) < 0.7
  beta = rng.standard_normal(3)
  loss, grad = survival.cox_loss(beta, x, time, event, 0.1)
  assert loss == pytest.approx(breslow_loop(beta, x, time, event, 0.1))
  numeric = optimize.approx_fprime(beta, lambda b: breslow_loop(b, x, time, event, 0.1), 1e-6)
  np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-6)


def simulated(n=120, seed=2):
  """Exponential survival with hazard exp(x . b), random censoring."""
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((n, 6))
  b = np.array([1.0, -0.8, 0.5, 0, 0, 0])
  t_event = rng.exponential(1 / np.exp(x @ b))
  t_censor = rng.exponential(2.0, n)
  return x, np.minimum(t_event, t_censor), t_event <= t_censor, b


def test_cox_recovers_the_risk_direction():
  x, time, event, b = simulated(400)
  beta = survival.fit_cox(x, time, event, l2=1e-3)
  assert np.corrcoef(beta, b)[0, 1] > 0.95
  assert survival.concordance_index(time, event, x @ beta) > 0.7


def test_cross_validated_models():
  x, time, event, _ = simulated()
  cox = survival.evaluate(x, time, event, method="cox", pca=0)
  assert cox["c_index"] > 0.65 and len(cox["fold_c_index"]) == 5
  # Two clusters with a 10x hazard ratio: the unsupervised grouping ranks them. A perfect two-group
  # risk scores 0.5 * 10/11 + 0.5 * 1/2 ~ 0.70 (pairs within a group tie).
  rng = np.random.default_rng(3)
  group = rng.random(150) < 0.5
  feats = rng.standard_normal((150, 4)) + 4.0 * group[:, None]
  time = rng.exponential(np.where(group, 0.3, 3.0))
  gmm = survival.evaluate(feats, time, np.ones(150, bool), method="gmm", pca=0)
  assert gmm["c_index"] > 0.62
  shuffled = survival.evaluate(feats, rng.permutation(time), np.ones(150, bool), method="gmm",
                               pca=0)
  assert abs(shuffled["c_index"] - 0.5) < 0.1


def test_bad_input():
  with pytest.raises(ValueError, match="method: expected one of"):
    survival.evaluate(np.zeros((4, 2)), np.ones(4), np.ones(4), method="rsf")
  with pytest.raises(ValueError, match="needs at least 2 slides and one event"):
    survival.evaluate(np.zeros((4, 2)), np.ones(4), np.zeros(4))


def mil_cohort(n=150, seed=4):
  """Slides of 20-40 patches; a slide's hazard grows with its fraction of 'tumour' patches,
  which differ from the others in one feature: a mean embedding dilutes it, attention need not."""
  rng = np.random.default_rng(seed)
  bags, frac = [], rng.uniform(0, 0.5, n)
  for f in frac:
    m = rng.integers(20, 41)
    b = rng.standard_normal((m, 8))
    b[rng.random(m) < f, 0] += 4.0
    bags.append(b)
  time = rng.exponential(1 / np.exp(12 * frac))
  return bags, time, np.ones(n, bool)


def test_cox_partial_loss_in_jax_matches_numpy():
  rng = np.random.default_rng(5)
  x = rng.standard_normal((30, 2))
  time = rng.integers(1, 8, 30).astype(float)
  event = rng.random(30) < 0.7
  beta = rng.standard_normal(2)
  want = breslow_loop(beta, x, time, event, 0.0)
  got = survival.cox_partial_loss(x @ beta, time, event.astype(float))
  assert float(got) == pytest.approx(want, rel=1e-5)


def test_abmil_learns_instance_level_risk():
  bags, time, event = mil_cohort()
  means = np.stack([b.mean(0) for b in bags])
  r = survival.evaluate(means, time, event, method="abmil", bags=bags)
  # The true fractions score 0.75 here; ABMIL out of fold ~0.68, time shuffled ~0.5.
  assert r["c_index"] > 0.62, r
  shuffled = survival.evaluate(means, np.random.default_rng(0).permutation(time), event,
                               method="abmil", bags=bags)
  assert abs(shuffled["c_index"] - 0.5) < 0.08, shuffled
  with pytest.raises(ValueError, match="abmil: needs bags"):
    survival.evaluate(means, time, event, method="abmil")
