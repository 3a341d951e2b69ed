"""Gene-expression probes: HEST-Benchmark's ridge, fitted on embeddings, saved as plain arrays with
what they expect of their inputs, loaded and checked against a backbone. Used by eval.py's
gene-expression task (fit, save) and by predict.py (load, check).

Probe (HEST-Benchmark's defaults): standardise the embeddings, PCA to 256 components, Ridge with
solver lsqr (at most 1000 iterations), no intercept and alpha = 100 / (n_features * n_genes),
where n_features is the probe's input width after PCA.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mvhybrid_jax.data import augment
from mvhybrid_jax.eval import features
from mvhybrid_jax.models import backbone


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


def probe_meta(*, label: str, checkpoint: str, settings: dict, seed: int, model, embedding: str,
               mpp: float, tile: int, data: str, n_spots: int, **extra) -> dict:
  """What a saved probe records for predict.py to check and reproduce its inputs."""
  return dict(label=label, checkpoint=checkpoint, backbone=dict(settings), seed=seed,
              params_digest=features.params_digest(model), embedding=embedding,
              normalisation=dict(mean=list(augment.HE_MEAN), std=list(augment.HE_STD)),
              target="log1p", mpp=mpp, tile=int(tile), data=data, n_spots=n_spots, **extra)


def check_backbone(probe: SavedProbe, model, settings: dict, spec: str) -> None:
  """A clear error unless the probe was fitted on this backbone's features (name, weights,
  image normalisation, embedding)."""
  want = probe.meta["backbone"]
  if settings["name"] != want["name"]:
    raise ValueError(f"config.checkpoint: {spec} is a {settings['name']} backbone, but the probe "
                     f"was fitted on {want['name']} features ({probe.meta['label']})")
  digest = features.params_digest(model)
  if digest != probe.meta["params_digest"]:
    raise ValueError(f"config.checkpoint: {spec} has other weights (digest {digest}) than the "
                     f"backbone the probe was fitted on ({probe.meta['label']}, digest "
                     f"{probe.meta['params_digest']}); a probe only applies to its own backbone")
  norm = probe.meta.get("normalisation", {})
  if (not np.allclose(norm.get("mean", []), augment.HE_MEAN)
      or not np.allclose(norm.get("std", []), augment.HE_STD)):
    raise ValueError(f"config.probe: fitted on images normalised with {norm}; this version "
                     f"normalises with mean {augment.HE_MEAN}, std {augment.HE_STD}")
  if probe.meta.get("embedding") not in backbone.EMBEDDINGS:
    raise ValueError(f"config.probe: embedding {probe.meta.get('embedding')!r}, expected one of "
                     f"{backbone.EMBEDDINGS}")
