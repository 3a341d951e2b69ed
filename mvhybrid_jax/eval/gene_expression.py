"""Gene expression from patch embeddings: HEST's ridge probe, its metrics, and the split protocols
(spec section 4).

The probe is eval/probes.py's (HEST-Benchmark's ridge). Targets are log1p(counts); the probe's
scaler and PCA are fitted on the training spots only. Metrics per fold: Pearson r per gene over
the test spots, averaged over genes (PCC), the mean of the 10 best genes (PCC-10), MAE and MSE.

Protocols: "random" (k-fold over slides, shuffled, so folds mix studies), "loso" (one fold per
study held out), "patient" (k-fold over patients, HEST-Benchmark's patient-wise CV). Every
protocol keeps a slide's spots together: neighbouring spots of one section would otherwise leak
between training and test. Drop = (random - loso) /
random for PCC; the relative increase for MAE and MSE.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import stats
from sklearn.model_selection import GroupKFold, KFold, LeaveOneGroupOut

from mvhybrid_jax.eval.probes import Probe

PROTOCOLS = ("random", "loso", "patient")
METRICS = ("pcc", "pcc10", "mae", "mse")


def per_gene_pcc(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
  """Pearson r of each gene over spots; NaN where either side is constant."""
  out = np.full(y.shape[1], np.nan)
  for g in range(y.shape[1]):
    if np.ptp(y[:, g]) > 0 and np.ptp(pred[:, g]) > 0:
      out[g] = stats.pearsonr(y[:, g], pred[:, g])[0]
  return out


def metrics(y: np.ndarray, pred: np.ndarray) -> tuple[dict, np.ndarray]:
  """({"pcc", "pcc10", "mae", "mse"}, per-gene r). Genes constant in the fold are left out of
  the PCC means (HEST's scipy-based code would give NaN)."""
  r = per_gene_pcc(y, pred)
  valid = np.sort(r[np.isfinite(r)])[::-1]
  return (dict(pcc=float(valid.mean()) if valid.size else float("nan"),
               pcc10=float(valid[:10].mean()) if valid.size else float("nan"),
               mae=float(np.abs(y - pred).mean()), mse=float(((y - pred) ** 2).mean())), r)


def folds(protocol: str, n: int, *, slide=None, study=None, patient=None, k: int = 10,
          seed: int = 0):
  """[(train indices, test indices)] of a protocol over n spots (random without slide: each spot
  its own group)."""
  index = np.arange(n)
  if protocol == "random":
    slides = np.asarray(slide) if slide is not None else index
    names = np.unique(slides)
    if len(names) < 2:
      raise ValueError(f"protocol random: needs at least 2 slides, got {len(names)}")
    splits = KFold(n_splits=min(k, len(names)), shuffle=True, random_state=seed).split(names)
    return [(index[~np.isin(slides, names[test])], index[np.isin(slides, names[test])])
            for _, test in splits]
  if protocol == "loso":
    groups = np.asarray(study)
    if len(np.unique(groups)) < 2:
      raise ValueError(f"protocol loso: needs at least 2 studies, got {np.unique(groups)}")
    return list(LeaveOneGroupOut().split(index, groups=groups))
  if protocol == "patient":
    groups = np.asarray(patient)
    n_patients = len(np.unique(groups))
    if n_patients < 2:
      raise ValueError(f"protocol patient: needs at least 2 patients, got {n_patients}")
    return list(GroupKFold(n_splits=min(k, n_patients)).split(index, groups=groups))
  raise ValueError(f"protocol: expected one of {PROTOCOLS}, got {protocol!r}")


def evaluate(features: np.ndarray, counts: np.ndarray, protocol: str, *, slide=None, study=None,
             patient=None, k: int = 10, probe: Probe | None = None, seed: int = 0) -> dict:
  """Cross-validated probe: {"folds": [metrics + "test_groups"], "mean", "std", "per_gene_pcc"
  (mean over folds), "alpha"}."""
  if features.shape[0] != counts.shape[0]:
    raise ValueError(f"features: {features.shape[0]} spots but counts has {counts.shape[0]}")
  if not np.isfinite(counts).all() or (counts < 0).any():
    raise ValueError("counts: expected finite, non-negative values")
  y = np.log1p(counts.astype(np.float64))
  probe = probe or Probe(seed=seed)
  rows, per_gene, alphas = [], [], []
  for train, test in folds(protocol, len(y), slide=slide, study=study, patient=patient, k=k,
                           seed=seed):
    fitted = dataclasses.replace(probe).fit(features[train], y[train])
    m, r = metrics(y[test], fitted.predict(features[test]))
    held = study if protocol == "loso" else patient if protocol == "patient" else None
    m["test_groups"] = sorted(set(np.asarray(held)[test].tolist())) if held is not None else []
    rows.append(m)
    per_gene.append(r)
    alphas.append(fitted.alpha_)
  table = {key: np.array([row[key] for row in rows]) for key in METRICS}
  return dict(folds=rows, mean={k: float(np.nanmean(v)) for k, v in table.items()},
              std={k: float(np.nanstd(v)) for k, v in table.items()},
              per_gene_pcc=np.nanmean(np.stack(per_gene), axis=0).tolist(),
              alpha=float(np.mean(alphas)))


def drop(random: dict, loso: dict) -> dict:
  """How much worse leave-one-study-out is than the random split, relative to random."""
  return {"pcc": (random["pcc"] - loso["pcc"]) / random["pcc"],
          "pcc10": (random["pcc10"] - loso["pcc10"]) / random["pcc10"],
          "mae": (loso["mae"] - random["mae"]) / random["mae"],
          "mse": (loso["mse"] - random["mse"]) / random["mse"]}
