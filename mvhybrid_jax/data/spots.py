"""Spots with expression, for the gene-expression benchmark: the synthetic slides or HEST-1k.

    spots = spots.synthetic("default")                       # the embedded data
    spots, skipped = spots.hest_spots("hest_data", "hest_data/HEST_v1_1_0.csv", k=200,
                                      criterion="hmhvg", where="organ=Bowel")
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mvhybrid_jax.data import datasets, hest


@dataclasses.dataclass
class Spots:
  images: object          # a sequence of encoded images or uint8 (H, W, 3) arrays, one per spot
  counts: np.ndarray      # (spots, genes) raw counts
  genes: list[str]
  slide: np.ndarray       # (spots,) str
  study: np.ndarray
  patient: np.ndarray
  time: np.ndarray | None = None   # (spots,) the slide's survival time (synthetic data)
  event: np.ndarray | None = None  # (spots,) bool: the slide's event observed

  def __len__(self):
    return len(self.counts)


def _text(v):
  return v.decode() if isinstance(v, bytes) else str(v)


def synthetic(config: str = "default", data_dir: str | None = None) -> Spots:
  """The synthetic cohort's spots (written on first use); genes GENE000..., the last five driven
  by fine texture."""
  src = datasets.load("synthetic_crc_spots", config, data_dir)["spots"]
  rows = [src[i] for i in range(len(src))]
  counts = np.stack([r["counts"] for r in rows])
  return Spots(images=[r["image"] for r in rows], counts=counts,
               genes=[f"GENE{i:03d}" for i in range(counts.shape[1])],
               slide=np.array([_text(r["slide"]) for r in rows]),
               study=np.array([_text(r["study"]) for r in rows]),
               patient=np.array([_text(r["patient"]) for r in rows]),
               time=np.array([float(r["time"]) for r in rows]),
               event=np.array([bool(r["event"]) for r in rows]))


def hest_spots(root: str, metadata_csv: str, *, k: int = 200, criterion: str = "hvg",
               genes_json: str | None = None, id_col: str = "id",
               study_col: str = "dataset_title", patient_col: str = "patient", ids=None,
               where=None, skip_missing: bool = False, mpp: float = hest.DEFAULT_MPP,
               required: tuple[str, ...] = ()) -> tuple[Spots, list[dict]]:
  """(spots, skipped samples): the chosen HEST-1k samples joined and concatenated, with HEST's
  gene selection (or the genes of a {"genes": [...]} JSON); patches read lazily at `mpp`."""
  samples, skipped = hest.load(root, metadata_csv, id_col=id_col, study_col=study_col,
                               patient_col=patient_col, ids=ids, where=where,
                               skip_missing=skip_missing, required=required)
  genes = hest.select_genes(samples, k, criterion=criterion,
                            genes=hest.read_genes(genes_json) if genes_json else None)
  repeat = lambda f: np.concatenate([np.full(len(s.barcodes), f(s)) for s in samples])
  return Spots(images=hest.Patches(samples, mpp),
               counts=np.concatenate([hest.expression(s, genes) for s in samples]),
               genes=genes, slide=repeat(lambda s: s.id), study=repeat(lambda s: s.study),
               patient=repeat(lambda s: s.patient)), skipped
