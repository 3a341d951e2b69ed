"""ArrayRecord files of encoded images with a JSON of metadata beside them, written atomically."""

from __future__ import annotations

import io
import json
import os

import numpy as np
from PIL import Image

from array_record.python import array_record_data_source, array_record_module


def encode_png(image) -> bytes:
  """A uint8 (H, W, 3) array or a PIL image as PNG bytes (lossless; what the records store).
  zlib level 3, not PIL's 6: a 256 px H&E tile encodes 2-3x faster for ~15% more bytes, and
  encoding was 80% of tiling a slide (benchmarks/prepare.py)."""
  img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
  buf = io.BytesIO()
  img.save(buf, "PNG", compress_level=3)
  return buf.getvalue()


class AtomicRecords:
  """with AtomicRecords(out) as w: w.write(bytes) ...; w.meta.update(...)

  Records go to `out`.incomplete and metadata to `out`.json.incomplete; both are renamed into
  place only if the block ends without an error and wrote at least one record, and removed
  otherwise: a failed or interrupted run leaves nothing half-written.
  """

  def __init__(self, out: str):
    self.out, self.count, self.meta = out, 0, {}

  def __enter__(self):
    self._writer = array_record_module.ArrayRecordWriter(self.out + ".incomplete", "group_size:1")
    return self

  def write(self, data: bytes):
    self._writer.write(data)
    self.count += 1

  def __exit__(self, exc_type, exc, tb):
    self._writer.close()
    if exc_type is not None or self.count == 0:
      os.remove(self.out + ".incomplete")
      return False
    with open(self.out + ".json.incomplete", "w") as f:
      json.dump(self.meta, f)
    # The JSON first: a records file in place always has its JSON beside it.
    os.replace(self.out + ".json.incomplete", self.out + ".json")
    os.replace(self.out + ".incomplete", self.out)
    return False


def read(path: str, writer: str) -> tuple[array_record_data_source.ArrayRecordDataSource, dict]:
  """The records and metadata of a file that `writer` (a function's name, for the error) wrote."""
  if not os.path.exists(path) or not os.path.exists(path + ".json"):
    raise ValueError(f"{path}: expected an ArrayRecord file written by {writer}, with "
                     f"{path}.json beside it")
  with open(path + ".json") as f:
    meta = json.load(f)
  return array_record_data_source.ArrayRecordDataSource([path]), meta


SUFFIX = ".array_record"


def shard_paths(spec: str) -> list[str]:
  """The ArrayRecord files a spec names: one file, a folder (its *.array_record, recursively), a
  glob, or a .txt list file (one path a line, relative to the list file); sorted, each with its
  JSON."""
  import glob
  if os.path.isdir(spec):
    paths = sorted(glob.glob(os.path.join(spec, "**", "*" + SUFFIX), recursive=True))
    where = f"{spec}: a folder with no {SUFFIX} files"
  elif os.path.isfile(spec) and spec.endswith(".txt"):
    base = os.path.dirname(os.path.abspath(spec))
    with open(spec) as f:
      paths = [os.path.join(base, line.strip()) for line in f if line.strip()]
    where = f"{spec}: the list file names no shards"
  elif os.path.isfile(spec):
    paths, where = [spec], ""
  else:
    paths = sorted(glob.glob(spec, recursive=True))
    where = f"{spec} does not exist (no file, folder or glob matches it)"
  if not paths:
    raise ValueError(where + "; expected ArrayRecord files written by data.folders.pack, "
                     "data.wsi.tile_slide or data.prepare")
  lacking = [p for p in paths if not os.path.exists(p + ".json")]
  if lacking:
    raise ValueError(f"{spec}: {len(lacking)} of {len(paths)} shards lack the JSON written beside "
                     f"them (first: {lacking[0]}.json); a shard still being written, or not one "
                     "of ours")
  return paths


class Shards:
  """Many ArrayRecord files of encoded images (folders.pack, wsi.tile_slide or data.prepare) as
  one random-access source of their images, in shard order."""

  def __init__(self, spec: str):
    self.spec, self.paths = spec, shard_paths(spec)
    self.metas = []
    for p in self.paths:
      with open(p + ".json") as f:
        self.metas.append(json.load(f))
    self._records = array_record_data_source.ArrayRecordDataSource(self.paths)
    sizes = [_count(m, p) for p, m in zip(self.paths, self.metas)]
    self.offsets = np.cumsum([0] + sizes)  # record i is in shard searchsorted(offsets, i, "right") - 1

  def __len__(self):
    return int(self.offsets[-1])

  def __getitem__(self, i):
    return self._records[i]

  def describe(self, i: int) -> str:
    """Record i as a user finds it: the shard, its record, and where the image came from."""
    s = int(np.searchsorted(self.offsets, i, "right")) - 1
    j, meta = i - int(self.offsets[s]), self.metas[s]
    if "paths" in meta:
      origin = f" (packed from {meta['paths'][j]})"
    elif "corners" in meta:
      origin = f" (tile at level-0 corner {tuple(meta['corners'][j])} of {meta.get('slide')})"
    else:
      origin = ""
    return f"{self.paths[s]} record {j}{origin}"


def _count(meta: dict, path: str) -> int:
  """A shard's record count, from its JSON (pack: paths; tile_slide: corners)."""
  for key in ("paths", "corners"):
    if key in meta:
      return len(meta[key])
  raise ValueError(f"{path}.json: expected the metadata of data.folders.pack (\"paths\") or "
                   "data.wsi.tile_slide (\"corners\")")
