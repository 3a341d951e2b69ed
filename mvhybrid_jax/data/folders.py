"""Users' own patches: a folder tree of PNG/JPEG/TIFF tiles (optionally one sub-folder per class,
as NCT-CRC-HE-100K) or a list file, packed into an ArrayRecord file of the original encoded bytes.

    n = pack("tiles/", "tiles.array_record")          # recursive; corrupt files skipped, logged
    src = FolderSource("tiles.array_record")          # src[i] -> {"image": bytes, "label", "path"}

Each image is decoded once while packing, so a corrupt, unreadable or oversized file is found
then: it is skipped, counted and logged with its path and reason (strict=True makes it an error). Labels, class names and
source paths go to a JSON file beside the records. Both files are written under temporary names
and renamed when complete.
"""

from __future__ import annotations

import io
import logging
import os
import warnings

from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from mvhybrid_jax.data import records

EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
MAX_PIXELS = 8192 * 8192  # 67 Mpx: far above any tile (NCT-CRC-HE's are 224 x 224)
log = logging.getLogger(__name__)


def list_images(root: str, *, class_folders: bool = False) -> tuple[list[str], list[int], list[str]]:
  """(paths, labels, class names). root: a folder (searched recursively) or a .txt list file
  with one path per line (relative paths are relative to the list file). With class_folders,
  each immediate sub-folder of root is a class (sorted by name) and its images are labelled so."""
  if os.path.isfile(root):
    base = os.path.dirname(os.path.abspath(root))
    with open(root) as f:
      paths = [os.path.join(base, line.strip()) for line in f if line.strip()]
    if not paths:
      raise ValueError(f"{root}: the list file names no images")
    return paths, [-1] * len(paths), []
  if not os.path.isdir(root):
    raise ValueError(f"{root}: expected a folder of images or a list file; it does not exist")
  classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))) \
      if class_folders else []
  tops = [(os.path.join(root, c), i) for i, c in enumerate(classes)] if class_folders \
      else [(root, -1)]
  paths, labels = [], []
  for top, label in tops:
    before = len(paths)
    for dirpath, _, files in sorted(os.walk(top)):
      for name in sorted(files):
        if name.lower().endswith(EXTENSIONS):
          paths.append(os.path.join(dirpath, name))
          labels.append(label)
    if class_folders and len(paths) == before:
      raise ValueError(f"{top}: a class folder with no images ({', '.join(EXTENSIONS)}); remove "
                       "it, or it becomes a class without examples")
  if not paths:
    raise ValueError(f"{root}: no images ({', '.join(EXTENSIONS)}) found"
                     f"{' in its class sub-folders' if class_folders else ''}")
  return paths, labels, classes


def list_csv(csv_path: str, *, image_col: str, label_col: str, split_col: str | None = None,
             split: str | None = None, image_dir: str | None = None,
             folder_col: str | None = None):
  """(paths, labels, class names) from a CSV of labelled images. Paths are image_dir (default:
  the CSV's folder) / [the row's folder_col value /] the row's image_col value; classes are the
  sorted label values. For example:
    MHIST's annotations.csv: image_col="Image Name", label_col="Majority Vote Label",
      split_col="Partition" (values "train", "test");
    UniToPatho's train.csv and test.csv: image_col="image_id", label_col="top_label_name",
      folder_col="top_label_name" (images sit in one folder per class).
  """
  import pandas as pd
  df = pd.read_csv(csv_path)
  for col in filter(None, (image_col, label_col, split_col, folder_col)):
    if col not in df.columns:
      raise ValueError(f"{csv_path}: expected a column {col!r}; it has {list(df.columns)}")
  if split is not None:
    if split_col is None:
      raise ValueError("split: needs split_col, the column that names each row's split")
    df = df[df[split_col].astype(str) == split]
    if df.empty:
      raise ValueError(f"{csv_path}: no rows with {split_col} == {split!r}")
  base = image_dir or os.path.dirname(os.path.abspath(csv_path))
  classes = sorted(df[label_col].astype(str).unique())
  index = {c: i for i, c in enumerate(classes)}
  folders = df[folder_col].astype(str) if folder_col else [""] * len(df)
  paths = [os.path.join(base, d, str(p)) for d, p in zip(folders, df[image_col])]
  return paths, [index[str(v)] for v in df[label_col]], classes


def pack(root: str, out: str, *, class_folders: bool = False, size: tuple[int, int] | None = None,
         strict: bool = False, listing=None, max_pixels: int = MAX_PIXELS) -> int:
  """Packs the images under root into `out` (ArrayRecord) and `out`.json; returns the count.

  size: the expected (height, width); an image of another size is an error naming the file.
  listing: (paths, labels, classes) from `list_csv` instead of walking root.
  max_pixels: a larger image is skipped and named (decoding it at every step would stall the
  pipeline); whole slides and large regions go through data.wsi.tile_slide.
  """
  paths, labels, classes = listing or list_images(root, class_folders=class_folders)
  kept_labels, kept_paths, skipped = [], [], []
  with records.AtomicRecords(out) as w:
    for path, label in tqdm(list(zip(paths, labels)), desc=f"packing {root}", unit="img"):
      try:
        with open(path, "rb") as f:
          data = f.read()
        with warnings.catch_warnings():  # PIL warns from 89 Mpx; max_pixels decides here
          warnings.simplefilter("ignore", Image.DecompressionBombWarning)
          with Image.open(io.BytesIO(data)) as img:
            shape = (img.height, img.width)
            if img.width * img.height > max_pixels:
              raise Image.DecompressionBombError(f"{img.width} x {img.height} px, more than "
                                                 f"max_pixels={max_pixels}")
            img.load()
      except Image.DecompressionBombError as e:
        reason = (f"too large ({e}): a slide or region, not a tile; tile it with "
                  "data.wsi.tile_slide")
      except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as e:
        reason = f"unreadable ({type(e).__name__}: {e})"
      else:
        reason = None
      if reason:
        if strict:
          raise ValueError(f"{path}: {reason}")
        log.warning("skipping %s: %s", path, reason)
        skipped.append({"path": path, "reason": reason})
        continue
      if size is not None and shape != tuple(size):
        raise ValueError(f"{path}: expected a {size[0]}x{size[1]} image, got "
                         f"{shape[0]}x{shape[1]}")
      w.write(data)
      kept_labels.append(label)
      kept_paths.append(path)
    if not kept_paths:
      raise ValueError(f"{root}: none of its {len(paths)} images could be read")
    w.meta.update(classes=classes, labels=kept_labels, paths=kept_paths, skipped=skipped)
  if skipped:
    log.warning("%s: %d of %d images skipped as unreadable or too large (listed with the reason "
                "in %s.json, \"skipped\")", root, len(skipped), len(paths), out)
  return len(kept_paths)


class FolderSource:
  """Random access to a packed folder: {"image": encoded bytes, "label": int, "path": str}."""

  def __init__(self, path: str):
    self.path = path
    self._records, meta = records.read(path, "folders.pack")
    self.classes, self.labels, self.paths = meta["classes"], meta["labels"], meta["paths"]
    self.skipped = meta["skipped"]

  def __len__(self):
    return len(self.labels)

  def __getitem__(self, i):
    return {"image": self._records[i], "label": self.labels[i], "path": self.paths[i]}

  def describe(self, i: int) -> str:
    """Record i as a user finds it: the file, the index, and the image it was packed from."""
    return f"{self.path} record {i} (packed from {self.paths[i]})"


class Images:
  """A source of {"image": ...} records (a FolderSource, a tfds data source) seen as its images
  alone: the input of data.pipeline.pretrain_dataset."""

  def __init__(self, source: FolderSource, name: str = "source"):
    self.source, self.name = source, name

  def __len__(self):
    return len(self.source)

  def __getitem__(self, i):
    return self.source[i]["image"]

  def describe(self, i: int) -> str:
    if hasattr(self.source, "describe"):
      return self.source.describe(i)
    return f"{self.name} record {i}"
