"""HEST-1k as HEST writes it: patches joined to spot expression, sample selection from the
metadata CSV, HEST's patient groups and gene selection.

Layout (HEST-1k's; HEST-Benchmark's task folders use adata/ for st/):
  <root>/patches/<id>.h5   hestcore's WSIPatcher.to_h5: img uint8 (n, 224, 224, 3); coords int64
                           (n, 2) top-left (x, y) at level 0; barcode (n, 1) variable-length
                           strings; attrs patch_size_src, patch_size_target, downsample and
                           pixel_size (the slide's um/px) on img (hestcore 1.0.4) or on img and
                           coords (1.0.6)
  <root>/st/<id>.h5ad      AnnData of every spot (more than the patches: HEST keeps the spots
                           under tissue), obs index = barcodes, raw counts
  <metadata CSV>           HEST_v1_1_0.csv: one row per sample; id, dataset_title, patient,
                           organ, species, st_technology, ... (patient is often empty)

The patches' microns per pixel are their field of view over their side:
patch_size_src * pixel_size / side (224 px at 0.5 um/px = 112 um for HEST's dump_patches). An h5
without those attrs is taken to be at hest's dump_patches default, 0.5 um/px, with a warning.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os

import anndata
import h5py
import numpy as np
import pandas as pd
from PIL import Image
from scipy import sparse

log = logging.getLogger(__name__)

DEFAULT_MPP = 0.5           # hest's dump_patches(target_pixel_size=0.5, target_patch_size=224)
MISSING_PATIENT = "Patient 1"  # HEST-Benchmark fills an empty patient so, within its study
CRITERIA = ("hvg", "mean", "hmhvg")


@dataclasses.dataclass
class Sample:
  id: str
  study: str
  patient: str            # the patient group: "<study> / <patient>" (HEST-Benchmark's grouping)
  path: str               # the patch h5
  barcodes: np.ndarray    # (patches,) str, in the h5's order
  expression: object      # (all spots, genes) the h5ad's X as stored (dense or sparse), raw counts
  rows: np.ndarray        # (patches,) the row of expression each patch joins
  genes: list[str]
  mpp: float              # the patches' microns per pixel
  side: int               # the patches' side in pixels
  mpp_from: str           # "h5 attrs" or why it is assumed

  @property
  def counts(self) -> np.ndarray:
    """(patches, genes) float32 raw counts of the joined spots."""
    return _dense(self.expression[self.rows])

  @property
  def images(self) -> np.ndarray:
    """(patches, side, side, 3) uint8, read whole (Patches reads them one at a time)."""
    with h5py.File(self.path, "r") as f:
      return f["img"][...]


def _dense(x) -> np.ndarray:
  return np.asarray(x.toarray() if hasattr(x, "toarray") else x, np.float32)


def _text(values) -> np.ndarray:
  """Barcodes as str: hestcore writes (n, 1) variable-length strings, h5py reads them as bytes."""
  return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in np.ravel(values)])


def _attrs(f: h5py.File) -> dict:
  out = {}
  for key in ("coords", "img"):
    out.update({k: v for k, v in f[key].attrs.items()})
  return out


def patch_scale(path: str, f: h5py.File, side: int) -> tuple[float, str]:
  """(microns per pixel of the patches, where that comes from) from hestcore's attrs."""
  attrs = _attrs(f)
  if "patch_size_src" in attrs and "pixel_size" in attrs:
    src, px = float(np.ravel(attrs["patch_size_src"])[0]), float(np.ravel(attrs["pixel_size"])[0])
    if not (src > 0 and px > 0 and math.isfinite(src * px)):
      raise ValueError(f"{path}: attrs patch_size_src={src}, pixel_size={px}: expected positive "
                       "numbers (hestcore writes the patch's side at level 0 and the slide's um/px)")
    return src * px / side, "h5 attrs"
  return DEFAULT_MPP, (f"assumed: no patch_size_src/pixel_size attrs on img or coords, so hest's "
                       f"dump_patches default {DEFAULT_MPP} um/px")


def expression_path(root: str, sample_id: str) -> str | None:
  return next((p for p in (os.path.join(root, d, f"{sample_id}.h5ad") for d in ("st", "adata"))
               if os.path.exists(p)), None)


def load_sample(root: str, sample_id: str, study: str = "", patient: str = "", *,
                patches: str | None = None, expression: str | None = None) -> Sample:
  """One sample: its patch h5 (root/patches/<id>.h5) joined by barcode to the spots of its h5ad
  (root/st/ or root/adata/<id>.h5ad); `patches`/`expression` give other paths."""
  h5_path = patches or os.path.join(root, "patches", f"{sample_id}.h5")
  ad_path = expression or expression_path(root, sample_id)
  if not os.path.exists(h5_path):
    raise ValueError(f"{h5_path}: missing patch file for sample {sample_id!r}")
  if ad_path is None or not os.path.exists(ad_path):
    raise ValueError(f"{ad_path or root}: no expression file (st/{sample_id}.h5ad or "
                     f"adata/{sample_id}.h5ad) for sample {sample_id!r}")
  try:
    f = h5py.File(h5_path, "r")
  except OSError as e:
    raise ValueError(f"{h5_path}: not a readable HDF5 file ({e})") from None
  with f:
    for key in ("img", "barcode", "coords"):
      if key not in f:
        raise ValueError(f"{h5_path}: expected datasets img, barcode, coords (as hestcore's "
                         f"WSIPatcher writes them); {key!r} is missing")
    img, barcodes = f["img"], _text(f["barcode"][...])
    if img.ndim != 4 or img.shape[-1] != 3 or img.dtype != np.uint8 or img.shape[1] != img.shape[2]:
      raise ValueError(f"{h5_path}: img: expected uint8 (n, side, side, 3), got {img.dtype} "
                       f"{img.shape}")
    if len(barcodes) != img.shape[0]:
      raise ValueError(f"{h5_path}: {len(barcodes)} barcodes for {img.shape[0]} patches")
    mpp, mpp_from = patch_scale(h5_path, f, img.shape[1])
    side = int(img.shape[1])
  try:
    adata = anndata.read_h5ad(ad_path)
  except Exception as e:  # h5py and anndata raise their own types
    raise ValueError(f"{ad_path}: not a readable AnnData .h5ad ({type(e).__name__}: {e})") from None
  rows = pd.Index(adata.obs_names.astype(str)).get_indexer(barcodes)
  if (rows < 0).any():
    missing = barcodes[rows < 0]
    raise ValueError(f"{h5_path}: {len(missing)} of {len(barcodes)} patch barcodes join no spot "
                     f"in {ad_path} (first: '{missing[0]}'; its obs index starts "
                     f"'{adata.obs_names[0]}')")
  x = adata.X
  values = x.data if sparse.issparse(x) else np.asarray(x)
  if not np.isfinite(values).all() or (values < 0).any():
    raise ValueError(f"{ad_path}: counts must be finite and non-negative (found "
                     f"{'NaN/inf' if not np.isfinite(values).all() else 'negative'} values)")
  return Sample(id=sample_id, study=study, patient=patient, path=h5_path, barcodes=barcodes,
                expression=x, rows=rows, genes=list(adata.var_names.astype(str)), mpp=mpp,
                side=side, mpp_from=mpp_from)


def parse_ids(ids) -> list[str] | None:
  """ids: None/"" (all), "A,B,C", a list, or a text file with one id a line."""
  if ids is None or (isinstance(ids, str) and not ids.strip()):
    return None
  if isinstance(ids, str):
    if os.path.isfile(ids):
      with open(ids) as f:
        return [line.strip() for line in f if line.strip()]
    return [s.strip() for s in ids.split(",") if s.strip()]
  return [str(s) for s in ids]


def parse_where(where) -> list[tuple[str, list[str]]]:
  """where: "organ=Bowel,st_technology=Visium|Xenium" (or a list of "column=value" strings) ->
  [(column, accepted values)]."""
  if not where:
    return []
  items = where.split(",") if isinstance(where, str) else list(where)
  out = []
  for item in (s.strip() for s in items):
    if not item:
      continue
    column, sep, values = item.partition("=")
    if not sep or not column.strip():
      raise ValueError(f"where: {item!r} is not column=value (several: a,b; alternatives: "
                       "value1|value2)")
    out.append((column.strip(), [v.strip() for v in values.split("|")]))
  return out


def select(metadata_csv: str, *, id_col: str = "id", ids=None, where=None,
           required: tuple[str, ...] = ()) -> pd.DataFrame:
  """The metadata rows of the chosen samples: ids (None: all), then the where filters."""
  try:
    meta = pd.read_csv(metadata_csv, dtype=str, keep_default_na=False)
  except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
    raise ValueError(f"{metadata_csv}: not a readable CSV ({type(e).__name__}: {e})") from None
  for col in (id_col, *required):
    if col not in meta.columns:
      raise ValueError(f"{metadata_csv}: expected a column {col!r}; it has {list(meta.columns)}")
  wanted = parse_ids(ids)
  if wanted is not None:
    unknown = [i for i in wanted if i not in set(meta[id_col])]
    if unknown:
      raise ValueError(f"{metadata_csv}: no rows for ids {unknown[:10]}"
                       f"{f' (and {len(unknown) - 10} more)' if len(unknown) > 10 else ''}")
    meta = meta.set_index(id_col, drop=False).loc[list(dict.fromkeys(wanted))]
  for column, values in parse_where(where):
    if column not in meta.columns:
      raise ValueError(f"where: {column!r} is not a column of {metadata_csv}; it has "
                       f"{list(meta.columns)}")
    kept = meta[meta[column].isin(values)]
    if kept.empty:
      seen = sorted(set(meta[column]))
      raise ValueError(f"where: no sample has {column}={'|'.join(values)} (of {len(meta)} "
                       f"rows; its values: {seen[:12]}{' ...' if len(seen) > 12 else ''})")
    meta = kept
  return meta.reset_index(drop=True)


def patient_groups(study, patient) -> np.ndarray:
  """HEST-Benchmark's patient groups: (study, patient), an empty patient filled as "Patient 1"
  within its study (so 'Patient 1' of two studies are two patients, and a study's unnamed samples
  one)."""
  return np.array([f"{s} / {p.strip() if p and p.strip() else MISSING_PATIENT}"
                   for s, p in zip(study, patient)])


def load(root: str, metadata_csv: str, *, id_col: str = "id", study_col: str = "dataset_title",
         patient_col: str = "patient", ids=None, where=None, skip_missing: bool = False,
         required: tuple[str, ...] = ()) -> tuple[list[Sample], list[dict]]:
  """(samples, skipped): the chosen samples of a HEST-1k folder, study and patient group from the
  CSV (columns absent: ""); `required` columns must exist. Samples whose files are missing are an
  error listing them, or with skip_missing, skipped: [{"id", "missing"}]."""
  meta = select(metadata_csv, id_col=id_col, ids=ids, where=where, required=required)
  column = lambda c: list(meta[c]) if c in meta.columns else [""] * len(meta)
  sample_ids, studies = list(meta[id_col]), column(study_col)
  groups = patient_groups(studies, column(patient_col)) if patient_col in meta.columns else \
      np.array([""] * len(meta))
  skipped = []
  for sid in sample_ids:
    patches = os.path.join("patches", f"{sid}.h5")
    lacking = [patches] if not os.path.exists(os.path.join(root, patches)) else []
    if expression_path(root, sid) is None:
      lacking.append(os.path.join("st", f"{sid}.h5ad"))
    if lacking:
      skipped.append({"id": sid, "missing": lacking})
  if skipped and not skip_missing:
    listed = ", ".join(f"{s['id']} ({' and '.join(s['missing'])})" for s in skipped[:8])
    raise ValueError(f"{root}: {len(skipped)} of {len(meta)} chosen samples lack their files: "
                     f"{listed}{' ...' if len(skipped) > 8 else ''}; choose samples (ids, "
                     "where) or skip them (skip_missing)")
  gone = {s["id"] for s in skipped}
  samples = [load_sample(root, sid, study, group)
             for sid, study, group in zip(sample_ids, studies, groups) if sid not in gone]
  if not samples:
    raise ValueError(f"{root}: none of the {len(meta)} chosen samples has its files")
  for s in skipped:
    log.warning("sample %s skipped: missing %s", s["id"], ", ".join(s["missing"]))
  return samples, skipped


class Patches:
  """The samples' patches in order, read from their h5 files one at a time (a Visium sample holds
  ~600 MB of them) and resized to `mpp` microns per pixel when they are at another scale."""

  def __init__(self, samples: list[Sample], mpp: float):
    self.samples, self.mpp = samples, mpp
    self.offsets = np.cumsum([0] + [len(s.barcodes) for s in samples])
    sides = {s.id: int(round(s.side * s.mpp / mpp)) for s in samples}
    if len(set(sides.values())) > 1:
      listed = ", ".join(f"{s.id}: {s.side} px at {s.mpp:.3g} um/px" for s in samples[:8])
      raise ValueError(f"patches: the samples' fields of view differ ({listed}), so at {mpp} "
                       f"um/px their sides would be {sorted(set(sides.values()))} px")
    self.side = next(iter(sides.values()))
    self._files = {}
    for s in samples:
      if s.mpp_from != "h5 attrs":
        log.warning("%s: %s", s.path, s.mpp_from)
      elif abs(s.mpp / mpp - 1) > 0.01:
        log.info("%s: patches of %d px at %.4g um/px, resized to %d px at %g um/px", s.path,
                 s.side, s.mpp, self.side, mpp)

  def __len__(self):
    return int(self.offsets[-1])

  def _locate(self, i: int) -> tuple[Sample, int]:
    k = int(np.searchsorted(self.offsets, i, "right")) - 1
    return self.samples[k], i - int(self.offsets[k])

  def __getitem__(self, i) -> np.ndarray:
    s, j = self._locate(int(i))
    if s.path not in self._files:
      self._files[s.path] = h5py.File(s.path, "r")
    image = self._files[s.path]["img"][j]
    if image.shape[0] != self.side:
      image = np.asarray(Image.fromarray(image).resize((self.side, self.side), Image.BICUBIC))
    return image

  def describe(self, i: int) -> str:
    s, j = self._locate(int(i))
    return f"{s.path} patch {j} (barcode {s.barcodes[j]})"


def _gene_sets_hint(samples: list[Sample]) -> str:
  """Why samples share few genes: names in another case (human TP53, mouse Trp53) mean mixed
  species."""
  sets = [set(s.genes) for s in samples]
  exact = set.intersection(*sets)
  folded = set.intersection(*({g.upper() for g in s} for s in sets))
  if len(folded) <= max(2 * len(exact), len(exact) + 10):
    return ""
  style = lambda s: "upper-case names (human)" if np.mean([g.isupper() for g in s.genes]) > 0.5 \
      else "capitalised names (mouse)"
  kinds = {}
  for s in samples:
    kinds.setdefault(style(s), []).append(s.id)
  listed = "; ".join(f"{k}: {', '.join(v[:5])}{' ...' if len(v) > 5 else ''}"
                     for k, v in kinds.items())
  return (f"; the samples share {len(exact)} gene names but {len(folded)} when case is ignored: "
          f"they mix species ({listed}); choose one, e.g. where species=Homo sapiens")


def _detected(sample: Sample, min_fraction: float) -> set[str]:
  """Genes with a count in at least ceil(min_fraction * spots) of the sample's spots (HEST's
  sc.pp.filter_genes(min_cells=...))."""
  x = sample.expression
  n_cells = np.asarray((x > 0).sum(axis=0)).ravel()
  return {g for g, n in zip(sample.genes, n_cells) if n >= math.ceil(min_fraction * x.shape[0])}


def _all_spots(samples: list[Sample], genes: list[str]) -> np.ndarray:
  """(every spot of every sample, genes) raw counts: the h5ads whole, as HEST selects on them."""
  out = []
  for s in samples:
    index = {g: i for i, g in enumerate(s.genes)}
    out.append(_dense(s.expression[:, [index[g] for g in genes]]))
  return np.concatenate(out)


def highly_variable(counts: np.ndarray, genes: list[str], k: int) -> list[str]:
  """scanpy's highly_variable_genes (flavor "seurat", n_top_genes=k) on log1p counts, the chosen
  genes in the given order: HEST's utils.get_k_genes(criteria="var")."""
  import scanpy as sc  # imported here: it takes seconds, and only gene selection needs it
  adata = anndata.AnnData(np.log1p(counts.astype(np.float32)), var=pd.DataFrame(index=genes))
  sc.pp.highly_variable_genes(adata, n_top_genes=k)
  return list(adata.var_names[adata.var["highly_variable"].to_numpy()][:k])


def select_genes(samples: list[Sample], k: int, *, criterion: str = "hvg",
                 min_fraction: float = 0.1, genes: list[str] | None = None) -> list[str]:
  """HEST's gene selection (utils.get_k_genes), on every spot of each sample's h5ad.

  Genes with a count in at least ceil(min_fraction * spots) spots of every sample, common to all
  (in sorted order), names containing "BLANK" or "Control" dropped (Xenium's controls); then on
  all spots pooled: "hvg" scanpy's seurat-flavour highly variable genes of log1p counts, in name
  order (HEST's criteria="var"); "mean" the k highest mean counts, highest first (criteria=
  "mean"); "hmhvg" (highly expressed and variable) the hvg among the 2k of highest mean. With
  `genes` (a fixed list, e.g. HEST-Benchmark's JSON), those genes are checked to exist in every
  sample and returned as they are.
  """
  if genes is not None:
    for s in samples:
      missing = sorted(set(genes) - set(s.genes))
      if missing:
        raise ValueError(f"sample {s.id}: genes {missing[:5]} (of {len(missing)}) are not in its "
                         f"expression data{_gene_sets_hint(samples)}")
    return list(genes)
  if criterion not in CRITERIA:
    raise ValueError(f"criterion: expected one of {CRITERIA}, got {criterion!r}")
  common = set.intersection(*(_detected(s, min_fraction) for s in samples))
  candidates = sorted(g for g in common if "BLANK" not in g and "Control" not in g)
  if len(candidates) < k:
    raise ValueError(f"k: only {len(candidates)} genes have a count in {min_fraction:.0%} of the "
                     f"spots of each of the {len(samples)} samples, asked for {k}"
                     f"{_gene_sets_hint(samples)}")
  pooled = _all_spots(samples, candidates)
  if criterion == "hvg":
    return highly_variable(pooled, candidates, k)
  by_mean = [candidates[i] for i in np.argsort(-pooled.mean(0), kind="stable")]
  if criterion == "mean":
    return by_mean[:k]
  top = sorted(by_mean[:2 * k])
  return highly_variable(_all_spots(samples, top), top, k)


def expression(sample: Sample, genes: list[str]) -> np.ndarray:
  """(patches, len(genes)) raw counts of the named genes at the joined spots."""
  index = {g: i for i, g in enumerate(sample.genes)}
  missing = [g for g in genes if g not in index]
  if missing:
    raise ValueError(f"sample {sample.id}: genes {missing[:5]} are not in its expression data")
  return _dense(sample.expression[sample.rows][:, [index[g] for g in genes]])


def read_genes(path: str) -> list[str]:
  """A gene list as HEST writes it: {"genes": [...]} (HEST-Benchmark's var_50genes.json)."""
  try:
    with open(path) as f:
      data = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise ValueError(f"{path}: expected a JSON file {{\"genes\": [...]}} ({e})") from None
  if not isinstance(data, dict) or not isinstance(data.get("genes"), list) or not data["genes"]:
    raise ValueError(f"{path}: expected {{\"genes\": [...]}} with at least one gene")
  return [str(g) for g in data["genes"]]


SPLIT_COLUMNS = ("sample_id", "patches_path", "expr_path")
# HEST-Benchmark's tasks in its leaderboard's order (folder names as on MahmoodLab/hest-bench)
BENCH_TASKS = ("IDC", "PRAD", "PAAD", "SKCM", "COAD", "READ", "CCRCC", "HCC", "LUNG", "LYMPH_IDC")


@dataclasses.dataclass
class BenchTask:
  """One HEST-Benchmark task folder: its genes and its splits, each (train rows, test rows) of
  sample_id and the paths of its patches and expression, absolute."""
  name: str
  root: str
  genes: list[str]
  splits: list[tuple[pd.DataFrame, pd.DataFrame]]

  def samples(self) -> pd.DataFrame:
    """Every sample of the task once: sample_id, patches_path, expr_path."""
    rows = pd.concat([df for split in self.splits for df in split])
    return rows.drop_duplicates("sample_id").reset_index(drop=True)


def _split_csv(path: str, root: str) -> pd.DataFrame:
  try:
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
  except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
    raise ValueError(f"{path}: not a readable CSV ({type(e).__name__}: {e})") from None
  missing = [c for c in SPLIT_COLUMNS if c not in df.columns]
  if missing or df.empty:
    raise ValueError(f"{path}: expected HEST-Benchmark's split columns {list(SPLIT_COLUMNS)} and "
                     f"at least one row; it has {list(df.columns)} and {len(df)} rows")
  for col in ("patches_path", "expr_path"):
    df[col] = [p if os.path.isabs(p) else os.path.join(root, p) for p in df[col]]
  return df[list(SPLIT_COLUMNS)]


def read_task(task_dir: str) -> BenchTask:
  """A HEST-Benchmark task folder: splits/train_K.csv and test_K.csv (K = 0..), the patch h5 and
  h5ad files they name (relative to the folder), and var_50genes.json ({"genes": [...]})."""
  split_dir = os.path.join(task_dir, "splits")
  if not os.path.isdir(split_dir):
    raise ValueError(f"{task_dir}: not a HEST-Benchmark task folder (no splits/ folder)")
  names = set(os.listdir(split_dir))
  ks = sorted(int(n[len("train_"):-4]) for n in names
              if n.startswith("train_") and n.endswith(".csv") and n[6:-4].isdigit())
  if not ks or ks != list(range(len(ks))) or any(f"test_{k}.csv" not in names for k in ks):
    raise ValueError(f"{split_dir}: expected train_0.csv, test_0.csv, train_1.csv, ... in pairs; "
                     f"it has {sorted(names)}")
  genes_path = os.path.join(task_dir, "var_50genes.json")
  if not os.path.exists(genes_path):
    raise ValueError(f"{task_dir}: no var_50genes.json (HEST-Benchmark's gene list, "
                     "{\"genes\": [...]})")
  splits = [(_split_csv(os.path.join(split_dir, f"train_{k}.csv"), task_dir),
             _split_csv(os.path.join(split_dir, f"test_{k}.csv"), task_dir)) for k in ks]
  task = BenchTask(name=os.path.basename(os.path.normpath(task_dir)), root=task_dir,
                   genes=read_genes(genes_path), splits=splits)
  for k, (train, test) in enumerate(splits):
    shared = sorted(set(train["sample_id"]) & set(test["sample_id"]))
    if shared:
      raise ValueError(f"{split_dir}: split {k} has samples {shared} in both train and test")
  rows = task.samples()
  lacking = [p for col in ("patches_path", "expr_path") for p in rows[col] if not os.path.exists(p)]
  if lacking:
    raise ValueError(f"{task_dir}: {len(lacking)} files its splits name are missing: "
                     f"{', '.join(lacking[:5])}{' ...' if len(lacking) > 5 else ''}")
  return task


def bench_tasks(bench_dir: str, names=None) -> list[BenchTask]:
  """HEST-Benchmark's tasks under bench_dir (a folder of task folders, as bench_data/, or one
  task folder); names (None: all found) chooses some, by folder name."""
  if not os.path.isdir(bench_dir):
    raise ValueError(f"{bench_dir}: not a folder; expected HEST-Benchmark's bench_data folder "
                     "(a folder per task: IDC, PRAD, ...) or one task's folder")
  if os.path.isdir(os.path.join(bench_dir, "splits")):
    found = {os.path.basename(os.path.normpath(bench_dir)): bench_dir}
  else:
    order = lambda d: (BENCH_TASKS.index(d) if d in BENCH_TASKS else len(BENCH_TASKS), d)
    found = {d: os.path.join(bench_dir, d) for d in sorted(os.listdir(bench_dir), key=order)
             if os.path.isdir(os.path.join(bench_dir, d, "splits"))}
  if not found:
    raise ValueError(f"{bench_dir}: no task folders (a folder with splits/ and "
                     "var_50genes.json)")
  wanted = parse_ids(names)
  if wanted:
    unknown = [n for n in wanted if n not in found]
    if unknown:
      raise ValueError(f"tasks: {unknown} not found in {bench_dir}; it has {sorted(found)}")
    found = {n: found[n] for n in wanted}
  return [read_task(path) for path in found.values()]
