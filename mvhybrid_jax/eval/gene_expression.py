"""Gene expression from patch embeddings: HEST's ridge probe, its metrics, and the split protocols
(spec section 4).

Probe (HEST-Benchmark's defaults): standardise the embeddings, PCA to 256 components, Ridge with
solver lsqr (at most 1000 iterations), no intercept and alpha = 100 / (n_features * n_genes),
where n_features is the probe's input width after PCA. Targets are log1p(counts). Scaler and PCA
are fitted on the training spots only. Metrics per fold: Pearson r per gene over the test spots,
averaged over genes (PCC), the mean of the 10 best genes (PCC-10), MAE and MSE.

Protocols: "random" (k-fold over slides, shuffled, so folds mix studies), "loso" (one fold per
study held out), "patient" (k-fold over patients, HEST-Benchmark's patient-wise CV). Every
protocol keeps a slide's spots together: neighbouring spots of one section would otherwise leak
between training and test. Drop = (random - loso) /
random for PCC; the relative increase for MAE and MSE.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
from scipy import stats
from sklearn.decomposition import PCA
from sklearn.linear_model import Ridge
from sklearn.model_selection import GroupKFold, KFold, LeaveOneGroupOut
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

PROTOCOLS = ("random", "loso", "patient")
METRICS = ("pcc", "pcc10", "mae", "mse")


def hest_alpha(n_features: int, n_genes: int) -> float:
  return 100.0 / (n_features * n_genes)


@dataclasses.dataclass
class Probe:
  """Standardise -> PCA (pca=None: none) -> Ridge(lsqr, no intercept); alpha=None: HEST's rule."""
  pca: int | None = 256
  alpha: float | None = None
  seed: int = 0

  def fit(self, x: np.ndarray, y: np.ndarray) -> "Probe":
    steps = [StandardScaler()]
    if self.pca:
      steps.append(PCA(n_components=min(self.pca, *x.shape), random_state=self.seed))
    self.reduce_ = make_pipeline(*steps).fit(x)
    z = self.reduce_.transform(x)
    alpha = self.alpha if self.alpha is not None else hest_alpha(z.shape[1], y.shape[1])
    self.ridge_ = Ridge(alpha=alpha, solver="lsqr", fit_intercept=False, max_iter=1000,
                        random_state=self.seed).fit(z, y)
    self.alpha_ = alpha
    return self

  def predict(self, x: np.ndarray) -> np.ndarray:
    return self.ridge_.predict(self.reduce_.transform(x))


PROBE_FORMAT = 1
_PROBE_ARRAYS = ("mean", "scale", "pca_mean", "components", "coef", "intercept")


@dataclasses.dataclass
class SavedProbe:
  """A fitted probe as plain arrays, portable without sklearn or pickle:
  log1p(expression) = (((x - mean) / scale - pca_mean) @ components.T) @ coef.T + intercept
  (without PCA, components is the identity). meta says what it expects: the backbone (name,
  settings, parameter digest), the embedding, the image normalisation, microns per pixel and
  tile size."""
  mean: np.ndarray
  scale: np.ndarray
  pca_mean: np.ndarray
  components: np.ndarray
  coef: np.ndarray
  intercept: np.ndarray
  genes: list[str]
  meta: dict

  def predict(self, x: np.ndarray) -> np.ndarray:
    z = ((np.asarray(x, np.float64) - self.mean) / self.scale - self.pca_mean) @ self.components.T
    return z @ self.coef.T + self.intercept


def export_probe(probe: Probe, genes, meta: dict, intercept=None) -> SavedProbe:
  """A fitted Probe's arrays, with its gene names and metadata. HEST's ridge has no intercept, so
  on its standardised (zero-mean) inputs it predicts centred targets; pass the training targets'
  mean as `intercept` to predict expression itself (the same slope and PCC)."""
  scaler = probe.reduce_.steps[0][1]
  pca = probe.reduce_.steps[1][1] if len(probe.reduce_.steps) > 1 else None
  dim = scaler.mean_.shape[0]
  coef = np.atleast_2d(probe.ridge_.coef_)
  if coef.shape[0] != len(genes):
    raise ValueError(f"genes: {len(genes)} names for a probe of {coef.shape[0]} outputs")
  return SavedProbe(mean=scaler.mean_, scale=scaler.scale_,
                    pca_mean=pca.mean_ if pca is not None else np.zeros(dim),
                    components=pca.components_ if pca is not None else np.eye(dim),
                    coef=coef, intercept=np.broadcast_to(
                        probe.ridge_.intercept_ if intercept is None else intercept,
                        (coef.shape[0],)).astype(np.float64),
                    genes=list(genes), meta={"format": PROBE_FORMAT, **meta})


def save_probe(path: str, saved: SavedProbe) -> None:
  """An .npz of plain arrays (no pickle), written under a temporary name and renamed."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "wb") as f:
    np.savez(f, **{k: np.asarray(getattr(saved, k), np.float64) for k in _PROBE_ARRAYS},
             genes=np.asarray(saved.genes, str), meta=np.asarray(json.dumps(saved.meta)))
  os.replace(tmp, path)


def load_probe(path: str) -> SavedProbe:
  """A probe that save_probe wrote; a clear error for anything else."""
  if not os.path.isfile(path):
    raise ValueError(f"probe: {path} does not exist (eval.py's gene-expression task writes "
                     "WORKDIR/probes/<checkpoint>.npz)")
  try:
    with np.load(path, allow_pickle=False) as f:
      arrays = {k: f[k] for k in f.files}
  except Exception as e:  # not a zip, not an .npz, or pickled content
    raise ValueError(f"probe: {path} is not a probe saved by eval.py ({type(e).__name__}: {e})")
  missing = [k for k in (*_PROBE_ARRAYS, "genes", "meta") if k not in arrays]
  if missing:
    raise ValueError(f"probe: {path} lacks {missing}; expected a probe saved by eval.py")
  meta = json.loads(str(arrays["meta"]))
  if meta.get("format") != PROBE_FORMAT:
    raise ValueError(f"probe: {path} has format {meta.get('format')}, this version reads "
                     f"{PROBE_FORMAT}")
  return SavedProbe(**{k: arrays[k] for k in _PROBE_ARRAYS},
                    genes=[str(g) for g in arrays["genes"]], meta=meta)


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
