"""HEST-1k style spatial transcriptomics: patches joined to spot expression, HEST's gene selection.

Layout (HEST-1k's):
  <root>/patches/<id>.h5      img uint8 (n, 224, 224, 3), barcode (n,), coords (n, 2)
  <root>/st/<id>.h5ad         AnnData (or <root>/adata/<id>.h5ad), obs index = spot barcodes
  <metadata CSV>              one row per sample: id, study and patient columns (HEST's own:
                              dataset_title, patient)
"""

from __future__ import annotations

import dataclasses
import os

import anndata
import h5py
import numpy as np
import pandas as pd

# Probes that are not genes (Xenium / Visium HD controls and blanks), dropped as HEST does.
CONTROL_PREFIXES = ("BLANK", "Blank", "NegControl", "NegPrb", "Control", "antisense",
                    "Unassigned", "DeprecatedCodeword", "Intergenic")


@dataclasses.dataclass
class Sample:
  id: str
  study: str
  patient: str
  images: np.ndarray      # (spots, H, W, 3) uint8
  coords: np.ndarray      # (spots, 2)
  barcodes: np.ndarray    # (spots,) str
  counts: np.ndarray      # (spots, genes) float32, raw counts
  genes: list[str]


def _decode(values):
  return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in np.ravel(values)])


def load_sample(root: str, sample_id: str, study: str = "", patient: str = "") -> Sample:
  """One sample's patches, joined by barcode to its spots' counts."""
  h5_path = os.path.join(root, "patches", f"{sample_id}.h5")
  ad_path = next((p for p in (os.path.join(root, d, f"{sample_id}.h5ad") for d in ("st", "adata"))
                  if os.path.exists(p)), None)
  if not os.path.exists(h5_path):
    raise ValueError(f"{h5_path}: missing patch file for sample {sample_id!r}")
  if ad_path is None:
    raise ValueError(f"{root}: no st/{sample_id}.h5ad or adata/{sample_id}.h5ad for sample "
                     f"{sample_id!r}")
  with h5py.File(h5_path, "r") as f:
    for key in ("img", "barcode", "coords"):
      if key not in f:
        raise ValueError(f"{h5_path}: expected datasets img, barcode, coords; {key!r} is missing")
    images, barcodes, coords = f["img"][...], _decode(f["barcode"][...]), f["coords"][...]
  if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
    raise ValueError(f"{h5_path}: img: expected uint8 (n, H, W, 3), got {images.dtype} "
                     f"{images.shape}")
  adata = anndata.read_h5ad(ad_path)
  index = pd.Index(adata.obs_names.astype(str))
  rows = index.get_indexer(barcodes)
  if (rows < 0).any():
    missing = barcodes[rows < 0]
    raise ValueError(f"{h5_path}: {len(missing)} patch barcodes join no spot in {ad_path} "
                     f"(first: {missing[0]!r})")
  x = adata.X[rows]
  counts = np.asarray(x.toarray() if hasattr(x, "toarray") else x, np.float32)
  if not np.isfinite(counts).all() or (counts < 0).any():
    raise ValueError(f"{ad_path}: counts must be finite and non-negative (found "
                     f"{'NaN/inf' if not np.isfinite(counts).all() else 'negative'} values)")
  return Sample(id=sample_id, study=study, patient=patient, images=images, coords=coords,
                barcodes=barcodes, counts=counts, genes=list(adata.var_names.astype(str)))


def load(root: str, metadata_csv: str, *, id_col: str = "id", study_col: str = "dataset_title",
         patient_col: str = "patient", ids: list[str] | None = None) -> list[Sample]:
  meta = pd.read_csv(metadata_csv)
  for col in (id_col, study_col, patient_col):
    if col not in meta.columns:
      raise ValueError(f"{metadata_csv}: expected a column {col!r}; it has {list(meta.columns)}")
  if ids is not None:
    unknown = sorted(set(ids) - set(meta[id_col].astype(str)))
    if unknown:
      raise ValueError(f"{metadata_csv}: no rows for ids {unknown}")
    meta = meta[meta[id_col].astype(str).isin(ids)]
  return [load_sample(root, str(r[id_col]), str(r[study_col]), str(r[patient_col]))
          for _, r in meta.iterrows()]


def select_genes(samples: list[Sample], k: int, *, criterion: str = "hvg",
                 min_fraction: float = 0.1, genes: list[str] | None = None) -> list[str]:
  """HEST's gene selection.

  Genes detected (count > 0) in at least min_fraction of the spots of every sample, common to
  all samples, controls and blanks dropped; then on log1p counts of all spots pooled:
  "hvg" the k of highest variance; "hmhvg" (highly-expressed-and-variable) the k of highest
  variance among the 2k of highest mean. With `genes` (a fixed list, e.g. HEST's JSON), those
  genes are checked to exist in every sample and returned as they are.
  """
  if genes is not None:
    for s in samples:
      missing = sorted(set(genes) - set(s.genes))
      if missing:
        raise ValueError(f"sample {s.id}: genes {missing[:5]} (of {len(missing)}) are not in its "
                         "expression data")
    return list(genes)
  if criterion not in ("hvg", "hmhvg"):
    raise ValueError(f"criterion: expected 'hvg' or 'hmhvg', got {criterion!r}")
  common = None
  for s in samples:
    detected = (s.counts > 0).mean(0) >= min_fraction
    kept = {g for g, d in zip(s.genes, detected) if d}
    common = kept if common is None else common & kept
  candidates = sorted(g for g in common if not g.startswith(CONTROL_PREFIXES))
  if len(candidates) < k:
    raise ValueError(f"k: only {len(candidates)} genes pass the filters, asked for {k}")
  pooled = np.log1p(np.concatenate([expression(s, candidates) for s in samples]))
  variance = pooled.var(0)
  if criterion == "hmhvg":
    top_mean = np.argsort(-pooled.mean(0), kind="stable")[:2 * k]
    order = top_mean[np.argsort(-variance[top_mean], kind="stable")]
  else:
    order = np.argsort(-variance, kind="stable")
  return [candidates[i] for i in order[:k]]


def expression(sample: Sample, genes: list[str]) -> np.ndarray:
  """(spots, len(genes)) raw counts of the named genes."""
  index = {g: i for i, g in enumerate(sample.genes)}
  missing = [g for g in genes if g not in index]
  if missing:
    raise ValueError(f"sample {sample.id}: genes {missing[:5]} are not in its expression data")
  return sample.counts[:, [index[g] for g in genes]]
