"""HEST-1k as HEST writes it: files written the way hestcore's WSIPatcher.to_h5 writes them, the
join by barcode, sample selection, HEST-Benchmark's patient groups, HEST's gene selection
against an independent float64 re-derivation of scanpy's seurat procedure, and bad input."""

import logging
import math

import anndata
import h5py
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mvhybrid_jax.data import hest

GENES = [f"G{i}" for i in range(30)] + ["BLANK_0001", "NegControlProbe_1"]


def write_patches(path, images, barcodes, coords, attrs=None, attrs_on=("img",)):
  """As hestcore's to_h5: chunked per patch, barcode (n, 1) variable-length strings, int64
  top-left coords, the patcher's attrs on img (1.0.4) or on img and coords (1.0.6)."""
  n, side = len(images), images.shape[1]
  with h5py.File(path, "w") as f:
    f.create_dataset("img", data=images, chunks=(1, side, side, 3), maxshape=(None, side, side, 3))
    f.create_dataset("coords", data=np.asarray(coords, np.int64), chunks=(1, 2),
                     maxshape=(None, 2))
    f.create_dataset("barcode", data=np.asarray(barcodes, object).reshape(n, 1), chunks=(1, 1),
                     maxshape=(None, 1), dtype=h5py.string_dtype())
    for key in attrs_on if attrs is not None else ():
      f[key].attrs.update(attrs)


def write_sample(root, sid, n=12, seed=0, shuffle_spots=True, folder="st", counts=None,
                 extra_spots=5, side=16, slide_mpp=0.25, attrs=True, genes=GENES, images=None):
  """One HEST-1k sample: n patches of `side` px at 0.5 um/px cut from a slide at slide_mpp, and an
  h5ad of n + extra_spots spots (the extra ones had no patch: outside tissue)."""
  rng = np.random.default_rng(seed)
  barcodes = np.array([f"{sid}-bc{i}" for i in range(n + extra_spots)])
  if images is None:
    images = rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8)
  src = round(side * 0.5 / slide_mpp)
  (root / "patches").mkdir(parents=True, exist_ok=True)
  (root / folder).mkdir(parents=True, exist_ok=True)
  write_patches(root / "patches" / f"{sid}.h5", images, barcodes[:n],
                rng.integers(0, 9999, (n, 2)),
                dict(patch_size_src=src, patch_size_target=side, downsample=0.5 / slide_mpp,
                     pixel_size=slide_mpp) if attrs else None)
  if counts is None:
    counts = rng.poisson(rng.uniform(0, 5, len(genes)), (n + extra_spots, len(genes)))
    counts = counts.astype(np.float32)
    counts[:, 5] = 0  # G5 never detected
  order = rng.permutation(len(counts)) if shuffle_spots else np.arange(len(counts))
  ad = anndata.AnnData(X=counts[order], obs=pd.DataFrame(index=barcodes[order]),
                       var=pd.DataFrame(index=genes))
  (root / folder).mkdir(exist_ok=True)
  ad.write_h5ad(root / folder / f"{sid}.h5ad")
  return images, counts


def test_join_by_barcode_as_hestcore_writes(tmp_path):
  images, counts = write_sample(tmp_path, "S1")
  s = hest.load_sample(str(tmp_path), "S1", "study", "p1")
  np.testing.assert_array_equal(s.images, images)
  np.testing.assert_array_equal(s.counts, counts[:12])  # the h5ad's rows were shuffled
  assert s.expression.shape == (17, len(GENES)) and s.genes == GENES
  assert list(s.barcodes) == [f"S1-bc{i}" for i in range(12)]
  # 16 px patches cut as 32 px at 0.25 um/px: 0.5 um/px, from the attrs
  assert s.side == 16 and s.mpp == pytest.approx(0.5) and s.mpp_from == "h5 attrs"


def test_patches_are_read_at_the_target_scale(tmp_path, caplog):
  write_sample(tmp_path, "A", side=16, seed=1)
  big, _ = write_sample(tmp_path, "B", side=32, seed=2)  # 32 px at 0.5 um/px
  with h5py.File(tmp_path / "patches" / "B.h5", "a") as f:  # attrs on coords alone: read too
    for key in list(f["img"].attrs):
      del f["img"].attrs[key]
    f["coords"].attrs.update(patch_size_src=32, pixel_size=0.125)  # 4 um over 32 px
  a, b = hest.load_sample(str(tmp_path), "A"), hest.load_sample(str(tmp_path), "B")
  assert b.mpp == pytest.approx(0.125)
  with pytest.raises(ValueError, match=r"fields of view differ \(A: 16 px at 0.5 um/px, "
                     r"B: 32 px at 0.125 um/px\)"):
    hest.Patches([a, b], 0.5)
  with h5py.File(tmp_path / "patches" / "B.h5", "a") as f:
    f["img"].attrs.update(patch_size_src=64, pixel_size=0.125)  # 8 um over 32 px: 0.25 um/px
  b = hest.load_sample(str(tmp_path), "B")
  patches = hest.Patches([a, b], 0.5)
  assert len(patches) == 24 and patches.side == 16
  want = np.asarray(Image.fromarray(big[3]).resize((16, 16), Image.BICUBIC))
  np.testing.assert_array_equal(patches[12 + 3], want)
  np.testing.assert_array_equal(patches[2], a.images[2])
  assert patches.describe(15) == f"{tmp_path}/patches/B.h5 patch 3 (barcode B-bc3)"
  # Without attrs: hest's default 0.5 um/px, said once
  write_sample(tmp_path, "C", side=16, attrs=False)
  c = hest.load_sample(str(tmp_path), "C")
  assert c.mpp == 0.5 and "assumed" in c.mpp_from
  with caplog.at_level(logging.WARNING):
    hest.Patches([a, c], 0.5)
  assert "C.h5: assumed: no patch_size_src/pixel_size attrs" in caplog.text


def write_hest(root, rows):
  """A HEST-1k folder with a metadata CSV of `rows` (dicts); samples with files: have_files."""
  for i, row in enumerate(rows):
    if row.pop("files", True):
      write_sample(root, row["id"], seed=i)
  pd.DataFrame(rows).to_csv(root / "meta.csv", index=False)
  return str(root / "meta.csv")


ROWS = [  # HEST_v1_1_0.csv's columns; "Patient 1" in two studies, empty patients
    dict(id="TENX1", dataset_title="study A", patient="Patient 1", organ="Bowel",
         species="Homo sapiens", st_technology="Visium"),
    dict(id="TENX2", dataset_title="study A", patient="", organ="Bowel",
         species="Homo sapiens", st_technology="Visium"),
    dict(id="TENX3", dataset_title="study B", patient="Patient 1", organ="Bowel",
         species="Homo sapiens", st_technology="Xenium"),
    dict(id="TENX4", dataset_title="study B", patient="", organ="Bowel",
         species="Homo sapiens", st_technology="Visium"),
    dict(id="TENX5", dataset_title="study B", patient="Patient 2", organ="Bowel",
         species="Homo sapiens", st_technology="Visium"),
    dict(id="MISC1", dataset_title="study C", patient="", organ="Brain",
         species="Mus musculus", st_technology="Visium", files=False),
]


def test_patients_group_by_study_as_hest_benchmark(tmp_path):
  csv = write_hest(tmp_path, [dict(r) for r in ROWS])
  samples, skipped = hest.load(str(tmp_path), csv, where="organ=Bowel")
  assert skipped == [] and [s.id for s in samples] == [f"TENX{i}" for i in range(1, 6)]
  # HEST-Benchmark: empty patients filled as "Patient 1" within the study, then (study, patient)
  assert [s.patient for s in samples] == [
      "study A / Patient 1", "study A / Patient 1", "study B / Patient 1",
      "study B / Patient 1", "study B / Patient 2"]
  assert len({s.patient for s in samples}) == 3
  # no patient column at all: still loads (random and LOSO do not use it) unless required
  pd.read_csv(csv).drop(columns=["patient"]).to_csv(tmp_path / "nopatient.csv", index=False)
  samples, _ = hest.load(str(tmp_path), str(tmp_path / "nopatient.csv"), ids="TENX1,TENX3")
  assert [(s.id, s.study, s.patient) for s in samples] == [("TENX1", "study A", ""),
                                                           ("TENX3", "study B", "")]
  with pytest.raises(ValueError, match="expected a column 'patient'"):
    hest.load(str(tmp_path), str(tmp_path / "nopatient.csv"), required=("patient",))


def test_choosing_samples(tmp_path):
  csv = write_hest(tmp_path, [dict(r) for r in ROWS])
  pick = lambda **kw: [r["id"] for _, r in hest.select(csv, **kw).iterrows()]
  assert pick(ids="TENX3, TENX1") == ["TENX3", "TENX1"]
  (tmp_path / "ids.txt").write_text("TENX2\n\nTENX5\n")
  assert pick(ids=str(tmp_path / "ids.txt")) == ["TENX2", "TENX5"]
  assert pick(where="organ=Bowel,st_technology=Visium") == ["TENX1", "TENX2", "TENX4", "TENX5"]
  assert pick(where="st_technology=Xenium|Visium HD") == ["TENX3"]
  assert pick(where=["dataset_title=study B", "patient="]) == ["TENX4"]
  assert pick(ids="TENX1,TENX3", where="st_technology=Visium") == ["TENX1"]
  with pytest.raises(ValueError, match=r"where: 'tissue' is not a column of .*meta.csv"):
    pick(where="tissue=colon")
  with pytest.raises(ValueError, match=r"where: no sample has organ=bowel .*'Bowel', 'Brain'"):
    pick(where="organ=bowel")
  with pytest.raises(ValueError, match=r"where: 'organ' is not column=value"):
    pick(where="organ")
  with pytest.raises(ValueError, match=r"no rows for ids \['TENX9'\]"):
    pick(ids="TENX1,TENX9")
  # The whole CSV with a partial download: an error listing what is missing, or skipped
  with pytest.raises(ValueError, match=r"1 of 6 chosen samples lack their files: MISC1 "
                     r"\(patches/MISC1.h5 and st/MISC1.h5ad\)"):
    hest.load(str(tmp_path), csv)
  samples, skipped = hest.load(str(tmp_path), csv, skip_missing=True)
  assert len(samples) == 5 and skipped == [
      {"id": "MISC1", "missing": ["patches/MISC1.h5", "st/MISC1.h5ad"]}]


def seurat_hvg(counts, genes, k):
  """scanpy's seurat flavour written out in float64 from its documentation (Satija et al. 2015):
  on expm1 of log1p data, dispersion var/mean (var with ddof 1), log dispersion and log1p mean,
  z-scored within 20 equal-width bins of the mean (a lone gene's bin: 1); those at or above the
  k-th largest are highly variable; HEST keeps the first k of them in the genes' order."""
  x = np.expm1(np.log1p(counts.astype(np.float32))).astype(np.float64)  # expm1 in float32, as scanpy
  mean, var = x.mean(0), x.var(0, ddof=1)
  mean[mean == 0] = 1e-12
  disp = var / mean
  disp[disp == 0] = np.nan
  disp, mean = np.log(disp), np.log1p(mean)
  edges = np.linspace(mean.min(), mean.max(), 21)
  bins = np.clip(np.searchsorted(edges, mean, side="left") - 1, 0, 19)
  norm = np.full_like(disp, np.nan)
  for b in np.unique(bins):
    members = bins == b
    d = disp[members]
    if members.sum() == 1:
      norm[members] = 1.0
    else:
      norm[members] = (d - np.nanmean(d)) / np.nanstd(d, ddof=1)
  cut = np.sort(norm[np.isfinite(norm)])[::-1][k - 1]
  return [g for g, v in zip(genes, np.nan_to_num(norm, nan=-np.inf)) if v >= cut][:k]


def test_gene_selection_is_hests(tmp_path):
  genes = [f"G{i}" for i in range(60)] + ["BLANK_0001", "NegControlProbe_1", "ControlX"]
  for i in range(3):
    rng = np.random.default_rng(i)
    counts = rng.poisson(rng.gamma(0.8, 3, len(genes)), (40, len(genes))).astype(np.float32)
    counts[:, 5] = 0                      # never detected
    counts[:, 7] = 0
    counts[:4, 7] = 1                     # in 4 of 40 spots = ceil(10%): kept
    counts[:, 8] = 0
    counts[:3, 8] = 1                     # 3 of 40: dropped
    counts[:, 9] = 0
    counts[30:33, 9] = 1                  # 3 of the patch-less spots only: dropped
    write_sample(tmp_path, f"S{i}", n=30, extra_spots=10, seed=i, counts=counts, genes=genes)
  samples = [hest.load_sample(str(tmp_path), f"S{i}") for i in range(3)]
  # the oracle: HEST's procedure (utils.get_k_genes) on every spot of the h5ads
  alls = [np.asarray(s.expression)[:, [s.genes.index(g) for g in genes]] for s in samples]
  kept = sorted(g for j, g in enumerate(genes)
                if all((a[:, j] > 0).sum() >= math.ceil(0.1 * len(a)) for a in alls)
                and "BLANK" not in g and "Control" not in g)
  assert "G7" in kept and not {"G5", "G8", "BLANK_0001", "ControlX"} & set(kept)
  pooled = np.concatenate(alls)[:, [genes.index(g) for g in kept]]
  for k in (8, 20):
    want = seurat_hvg(pooled, kept, k)
    assert hest.select_genes(samples, k) == want
  by_mean = [kept[i] for i in np.argsort(-pooled.mean(0), kind="stable")]
  assert hest.select_genes(samples, 8, criterion="mean") == by_mean[:8]
  top = sorted(by_mean[:16])
  hm = hest.select_genes(samples, 8, criterion="hmhvg")
  assert hm == seurat_hvg(pooled[:, [kept.index(g) for g in top]], top, 8)
  assert hest.select_genes(samples, 2, genes=["G1", "G2"]) == ["G1", "G2"]
  with pytest.raises(ValueError, match="not in its expression data"):
    hest.select_genes(samples, 2, genes=["G1", "MISSING"])
  with pytest.raises(ValueError, match=r"criterion: expected one of \('hvg', 'mean', 'hmhvg'\)"):
    hest.select_genes(samples, 2, criterion="var")


def test_mixed_species_are_named(tmp_path):
  human = [f"GENE{i}" for i in range(40)]
  mouse = [g.capitalize() for g in human]
  write_sample(tmp_path, "H1", genes=human, seed=1)
  write_sample(tmp_path, "M1", genes=mouse, seed=2)
  samples = [hest.load_sample(str(tmp_path), s) for s in ("H1", "M1")]
  with pytest.raises(ValueError, match=r"only 0 genes .* share 0 gene names but 40 when case is "
                     r"ignored: they mix species \(upper-case names \(human\): H1; capitalised "
                     r"names \(mouse\): M1\)"):
    hest.select_genes(samples, 10)


def test_bad_input(tmp_path):
  images, counts = write_sample(tmp_path, "S1")
  with h5py.File(tmp_path / "patches" / "S1.h5", "a") as f:
    del f["barcode"]
    f.create_dataset("barcode", data=np.array(["nope"] * len(images), object).reshape(-1, 1),
                     dtype=h5py.string_dtype())
  with pytest.raises(ValueError, match=r"S1\.h5: 12 of 12 patch barcodes join no spot .*"
                     r"\(first: 'nope'; its obs index starts 'S1-bc"):
    hest.load_sample(str(tmp_path), "S1")
  bad = counts.copy()
  bad[0, 0] = np.nan
  write_sample(tmp_path, "S2", counts=bad)
  with pytest.raises(ValueError, match=r"S2\.h5ad: counts must be finite"):
    hest.load_sample(str(tmp_path), "S2")
  with pytest.raises(ValueError, match="missing patch file"):
    hest.load_sample(str(tmp_path), "S9")
  write_sample(tmp_path, "S3")
  with h5py.File(tmp_path / "patches" / "S3.h5", "a") as f:
    f["img"].attrs["pixel_size"] = -1.0
  with pytest.raises(ValueError, match=r"S3\.h5: attrs patch_size_src=32.0, pixel_size=-1.0"):
    hest.load_sample(str(tmp_path), "S3")
  (tmp_path / "patches" / "S4.h5").write_bytes(b"not hdf5")
  (tmp_path / "st" / "S4.h5ad").write_bytes(b"")
  with pytest.raises(ValueError, match=r"S4\.h5: not a readable HDF5 file"):
    hest.load_sample(str(tmp_path), "S4")
  (tmp_path / "bad.csv").write_bytes(b"\xff\xfe\x00")
  with pytest.raises(ValueError, match=r"bad.csv: not a readable CSV"):
    hest.select(str(tmp_path / "bad.csv"))
