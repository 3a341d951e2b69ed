"""ArrayRecord files of encoded images with a JSON of metadata beside them, written atomically."""

from __future__ import annotations

import io
import json
import os

import numpy as np
from PIL import Image

from array_record.python import array_record_data_source, array_record_module


def encode_png(image) -> bytes:
  """A uint8 (H, W, 3) array or a PIL image as PNG bytes (lossless; what the records store)."""
  img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
  buf = io.BytesIO()
  img.save(buf, "PNG")
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
    os.replace(self.out + ".incomplete", self.out)
    os.replace(self.out + ".json.incomplete", self.out + ".json")
    return False


def read(path: str, writer: str) -> tuple[array_record_data_source.ArrayRecordDataSource, dict]:
  """The records and metadata of a file that `writer` (a function's name, for the error) wrote."""
  if not os.path.exists(path) or not os.path.exists(path + ".json"):
    raise ValueError(f"{path}: expected an ArrayRecord file written by {writer}, with "
                     f"{path}.json beside it")
  with open(path + ".json") as f:
    meta = json.load(f)
  return array_record_data_source.ArrayRecordDataSource([path]), meta
