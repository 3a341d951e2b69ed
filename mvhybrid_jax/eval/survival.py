"""Survival from slide embeddings: the concordance index, a ridge-penalised Cox model, an
unsupervised GMM risk grouping, and attention-MIL, cross-validated over slides (spec section 4).

For Cox and GMM a slide's embedding is the mean of its patches' embeddings, standardised and
reduced by PCA on the training slides (few slides, wide embeddings).
- Cox: Breslow partial likelihood with an L2 penalty, fitted by L-BFGS; risk = x . beta.
- GMM: a Gaussian mixture fitted to the training slides without their outcomes; each component's
  risk is its training slides' event rate (events / total follow-up time); a test slide's risk is
  its posterior-weighted rate.
- ABMIL: gated attention pooling over a slide's patch embeddings (Ilse et al., 2018) then a
  linear risk, trained with the Cox partial likelihood (AdamW, full batch of training slides,
  50 steps: longer overfits small cohorts); at most max_instances patches per slide, drawn once
  by seed.
C-index per fold where a fold has comparable pairs, and over all out-of-fold risks pooled.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from scipy import optimize
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

METHODS = ("cox", "gmm", "abmil")


def concordance_index(time, event, risk) -> float:
  """Harrell's C: among pairs where slide i had the event strictly before slide j's time, the
  fraction with risk_i > risk_j (ties in risk count one half). NaN without comparable pairs."""
  time, event, risk = (np.asarray(v, np.float64) for v in (time, event, risk))
  comparable = (time[:, None] < time[None, :]) & (event[:, None] > 0)
  n = comparable.sum()
  if n == 0:
    return float("nan")
  wins = (risk[:, None] > risk[None, :]) + 0.5 * (risk[:, None] == risk[None, :])
  return float((wins * comparable).sum() / n)


def cox_loss(beta, x, time, event, l2):
  """(penalised negative Breslow log partial likelihood, its gradient), averaged over events."""
  order = np.argsort(-time, kind="stable")  # longest first: risk sets are prefixes
  x, time, event = x[order], time[order], event[order]
  eta = x @ beta
  shift = eta.max()
  w = np.exp(eta - shift)
  cum_w, cum_wx = np.cumsum(w), np.cumsum(w[:, None] * x, axis=0)
  last = np.searchsorted(-time, -time, side="right") - 1  # tied times share one risk set
  denom, num = cum_w[last], cum_wx[last]
  e = event > 0
  n_events = max(e.sum(), 1)
  loss = -(eta[e] - shift - np.log(denom[e])).sum() / n_events + 0.5 * l2 * beta @ beta
  grad = -(x[e] - num[e] / denom[e, None]).sum(0) / n_events + l2 * beta
  return loss, grad


def fit_cox(x, time, event, l2: float = 1e-2) -> np.ndarray:
  x, time, event = np.asarray(x, np.float64), np.asarray(time, np.float64), np.asarray(event)
  res = optimize.minimize(cox_loss, np.zeros(x.shape[1]), args=(x, time, event, l2),
                          jac=True, method="L-BFGS-B")
  return res.x


def _reduce(train, test, pca: int, seed: int):
  steps = [StandardScaler()]
  if pca:
    steps.append(PCA(n_components=min(pca, *train.shape), random_state=seed))
  reduce = make_pipeline(*steps).fit(train)
  return reduce.transform(train), reduce.transform(test)


def gmm_risk(train, time, event, test, components: int = 2, seed: int = 0) -> np.ndarray:
  gmm = GaussianMixture(n_components=min(components, len(train)), covariance_type="diag",
                        random_state=seed).fit(train)
  post = gmm.predict_proba(train)  # (slides, components)
  rate = (post * event[:, None]).sum(0) / np.clip((post * time[:, None]).sum(0), 1e-12, None)
  return gmm.predict_proba(test) @ rate


class ABMIL(nnx.Module):
  """Bags (slides, instances, dim) with a mask -> (risk (slides,), attention (slides, instances))."""

  def __init__(self, dim: int, hidden: int = 64, attention: int = 32, *, rngs: nnx.Rngs):
    self.embed = nnx.Linear(dim, hidden, rngs=rngs)
    self.v, self.u = nnx.Linear(hidden, attention, rngs=rngs), nnx.Linear(hidden, attention,
                                                                            rngs=rngs)
    self.w = nnx.Linear(attention, 1, rngs=rngs)
    self.risk = nnx.Linear(hidden, 1, rngs=rngs)

  def __call__(self, bags, mask):
    h = jax.nn.relu(self.embed(bags))  # (S, N, hidden)
    logits = self.w(jnp.tanh(self.v(h)) * jax.nn.sigmoid(self.u(h)))[..., 0]  # (S, N)
    a = jax.nn.softmax(jnp.where(mask, logits, -jnp.inf), axis=-1)
    return self.risk((a[..., None] * h).sum(1))[:, 0], a


def cox_partial_loss(risk, time, event):
  """The mean negative Breslow log partial likelihood of risks, in JAX."""
  at_risk = time[None, :] >= time[:, None]  # (i, j): j is at risk when i has its event
  log_denom = jax.nn.logsumexp(jnp.where(at_risk, risk[None, :], -jnp.inf), axis=1)
  return -jnp.sum(event * (risk - log_denom)) / jnp.maximum(event.sum(), 1.0)


def _bags(bags, max_instances, rng):
  """Padded (slides, n, dim) and mask, at most max_instances per slide."""
  picked = [b[rng.choice(len(b), max_instances, replace=False)] if len(b) > max_instances else b
            for b in bags]
  n = max(len(b) for b in picked)
  x = np.zeros((len(picked), n, picked[0].shape[1]), np.float32)
  mask = np.zeros((len(picked), n), bool)
  for i, b in enumerate(picked):
    x[i, :len(b)], mask[i, :len(b)] = b, True
  return x, mask


@nnx.jit
def _abmil_step(model, opt, x, mask, time, event):
  """One full-batch AdamW step on the Cox loss (compiled once per bag shape)."""
  loss, grads = nnx.value_and_grad(lambda m: cox_partial_loss(m(x, mask)[0], time, event))(model)
  opt.update(model, grads)
  return loss


def abmil_risk(train_bags, time, event, test_bags, *, steps: int = 50, lr: float = 1e-3,
               weight_decay: float = 1e-4, max_instances: int = 512, seed: int = 0):
  """Test slides' risks from an ABMIL trained on the training slides."""
  rng = np.random.default_rng(seed)
  scaler = StandardScaler().fit(np.concatenate(train_bags))
  scale = lambda bags: [scaler.transform(b).astype(np.float32) for b in bags]
  x, mask = _bags(scale(train_bags), max_instances, rng)
  model = ABMIL(x.shape[-1], rngs=nnx.Rngs(seed))
  opt = nnx.Optimizer(model, optax.adamw(lr, weight_decay=weight_decay), wrt=nnx.Param)
  args = (jnp.asarray(x), jnp.asarray(mask), jnp.asarray(time, jnp.float32),
          jnp.asarray(event, jnp.float32))
  for _ in range(steps):
    _abmil_step(model, opt, *args)
  xt, mt = _bags(scale(test_bags), max_instances, rng)
  return np.asarray(model(jnp.asarray(xt), jnp.asarray(mt))[0], np.float64)


def evaluate(slide_feats, time, event, *, method: str = "cox", folds: int = 5, pca: int = 8,
             l2: float = 1e-2, components: int = 2, bags=None, seed: int = 0) -> dict:
  """{"c_index": pooled out-of-fold, "fold_c_index": [...], "mean", "std"} over k folds of
  slides. bags (method "abmil"): each slide's (patches, dim) embeddings."""
  if method not in METHODS:
    raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
  if method == "abmil" and bags is None:
    raise ValueError("method abmil: needs bags, each slide's patch embeddings")
  x = np.asarray(slide_feats, np.float64)
  time, event = np.asarray(time, np.float64), np.asarray(event).astype(bool)
  if not (len(x) == len(time) == len(event)):
    raise ValueError("slide_feats, time, event: expected one row per slide each")
  k = min(folds, len(x))
  if k < 2 or event.sum() == 0:
    raise ValueError(f"survival: needs at least 2 slides and one event, got {len(x)} slides, "
                     f"{int(event.sum())} events")
  risk = np.zeros(len(x))
  per_fold = []
  for train, test in KFold(n_splits=k, shuffle=True, random_state=seed).split(x):
    if method == "abmil":
      risk[test] = abmil_risk([bags[i] for i in train], time[train], event[train],
                              [bags[i] for i in test], seed=seed)
      per_fold.append(concordance_index(time[test], event[test], risk[test]))
      continue
    a, b = _reduce(x[train], x[test], pca, seed)
    if method == "cox":
      risk[test] = b @ fit_cox(a, time[train], event[train], l2)
    else:
      risk[test] = gmm_risk(a, time[train], event[train], b, components, seed)
    per_fold.append(concordance_index(time[test], event[test], risk[test]))
  finite = [c for c in per_fold if np.isfinite(c)]
  return dict(c_index=concordance_index(time, event, risk), fold_c_index=per_fold,
              mean=float(np.mean(finite)) if finite else float("nan"),
              std=float(np.std(finite)) if finite else float("nan"))
