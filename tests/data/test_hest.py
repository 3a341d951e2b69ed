"""HEST-1k layout: the join by barcode, HEST's gene selection, and bad input."""

import anndata
import h5py
import numpy as np
import pandas as pd
import pytest

from mvhybrid_jax.data import hest

GENES = [f"G{i}" for i in range(30)] + ["BLANK_0001", "NegControlProbe_1"]


def write_sample(root, sid, n=12, seed=0, shuffle_spots=True, folder="st", counts=None):
  rng = np.random.default_rng(seed)
  barcodes = np.array([f"{sid}-bc{i}" for i in range(n)])
  images = rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)
  (root / "patches").mkdir(parents=True, exist_ok=True)
  with h5py.File(root / "patches" / f"{sid}.h5", "w") as f:
    f["img"], f["barcode"], f["coords"] = images, barcodes.astype("S"), rng.integers(0, 99, (n, 2))
  if counts is None:
    counts = rng.poisson(rng.uniform(0, 5, len(GENES)), (n, len(GENES))).astype(np.float32)
    counts[:, 5] = 0  # G5 never detected
  order = rng.permutation(n) if shuffle_spots else np.arange(n)
  ad = anndata.AnnData(X=counts[order], obs=pd.DataFrame(index=barcodes[order]),
                       var=pd.DataFrame(index=GENES))
  (root / folder).mkdir(exist_ok=True)
  ad.write_h5ad(root / folder / f"{sid}.h5ad")
  return images, counts


def test_join_by_barcode(tmp_path):
  images, counts = write_sample(tmp_path, "S1")
  s = hest.load_sample(str(tmp_path), "S1", "study", "p1")
  np.testing.assert_array_equal(s.images, images)
  np.testing.assert_array_equal(s.counts, counts)  # the adata rows were shuffled
  assert s.genes == GENES


def test_load_with_metadata_and_adata_folder(tmp_path):
  write_sample(tmp_path, "S1", seed=1)
  write_sample(tmp_path, "S2", seed=2, folder="adata")
  pd.DataFrame({"id": ["S1", "S2"], "dataset_title": ["a", "b"], "patient": ["p", "q"]}).to_csv(
      tmp_path / "meta.csv", index=False)
  samples = hest.load(str(tmp_path), str(tmp_path / "meta.csv"))
  assert [(s.id, s.study, s.patient) for s in samples] == [("S1", "a", "p"), ("S2", "b", "q")]
  with pytest.raises(ValueError, match="expected a column 'slide'"):
    hest.load(str(tmp_path), str(tmp_path / "meta.csv"), id_col="slide")


def test_gene_selection_matches_numpy(tmp_path):
  for i in range(3):
    write_sample(tmp_path, f"S{i}", seed=i)
  samples = [hest.load_sample(str(tmp_path), f"S{i}") for i in range(3)]
  k = 8
  got = hest.select_genes(samples, k)
  # independent computation
  keep = [g for j, g in enumerate(GENES)
          if all((s.counts[:, j] > 0).mean() >= 0.1 for s in samples)
          and not g.startswith(("BLANK", "NegControl"))]
  cols = [GENES.index(g) for g in keep]
  pooled = np.log1p(np.concatenate([s.counts[:, cols] for s in samples]))
  want = [keep[i] for i in np.argsort(-pooled.var(0))[:k]]
  assert got == want and "G5" not in got and not any(g.startswith("BLANK") for g in got)
  hm = hest.select_genes(samples, k, criterion="hmhvg")
  top_mean = set(np.array(keep)[np.argsort(-pooled.mean(0))[:2 * k]])
  assert len(hm) == k and set(hm) <= top_mean
  assert hest.select_genes(samples, 2, genes=["G1", "G2"]) == ["G1", "G2"]
  with pytest.raises(ValueError, match="not in its expression data"):
    hest.select_genes(samples, 2, genes=["G1", "MISSING"])


def test_bad_input(tmp_path):
  images, counts = write_sample(tmp_path, "S1")
  with h5py.File(tmp_path / "patches" / "S1.h5", "a") as f:
    del f["barcode"]
    f["barcode"] = np.array([b"nope"] * len(images))
  with pytest.raises(ValueError, match=r"S1\.h5: 12 patch barcodes join no spot"):
    hest.load_sample(str(tmp_path), "S1")
  bad = counts.copy()
  bad[0, 0] = np.nan
  write_sample(tmp_path, "S2", counts=bad)
  with pytest.raises(ValueError, match=r"S2\.h5ad: counts must be finite"):
    hest.load_sample(str(tmp_path), "S2")
  with pytest.raises(ValueError, match="missing patch file"):
    hest.load_sample(str(tmp_path), "S9")
