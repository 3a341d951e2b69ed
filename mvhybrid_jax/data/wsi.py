"""Whole-slide images (.svs, .tif, .ndpi, ... read by tiffslide) tiled at a target resolution,
tissue only, into ArrayRecord.

    n = tile_slide("slide.svs", "slide.array_record", target_mpp=0.5)   # 256 px tiles

Tissue detection: Otsu's threshold on the saturation of a low-resolution thumbnail (background
glass is bright and grey); a tile is kept if at least `min_tissue` of it is tissue. Tiles are
read from the pyramid level closest above the needed resolution and resized to `tile` pixels.
"""

from __future__ import annotations

import math

import numpy as np
import tiffslide
from PIL import Image
from tqdm import tqdm

from mvhybrid_jax.data import records


def otsu_threshold(values: np.ndarray) -> float:
  """Otsu's threshold of uint8 values: maximises the between-class variance."""
  hist = np.bincount(values.ravel(), minlength=256).astype(np.float64)
  p = hist / hist.sum()
  omega = np.cumsum(p)
  mu = np.cumsum(p * np.arange(256))
  with np.errstate(divide="ignore", invalid="ignore"):
    between = (mu[-1] * omega - mu) ** 2 / (omega * (1 - omega))
  if np.isnan(between).all():  # a single value: nothing to split
    return float(values.max())
  return float(np.nanargmax(between))


def tissue_mask(rgb: np.ndarray) -> np.ndarray:
  """Bool mask of tissue pixels in an RGB thumbnail."""
  sat = np.asarray(Image.fromarray(rgb).convert("HSV"))[..., 1]
  return sat > max(otsu_threshold(sat), 15)  # a floor keeps blank slides blank


def slide_mpp(slide, path: str, mpp: float | None) -> float:
  if mpp is not None:
    return float(mpp)
  value = slide.properties.get("tiffslide.mpp-x")
  if not value:
    raise ValueError(f"{path}: the slide does not record its microns per pixel; pass mpp=")
  return float(value)


def tile_slide(path: str, out: str, *, target_mpp: float = 0.5, tile: int = 256,
               min_tissue: float = 0.5, mpp: float | None = None) -> int:
  """Writes the slide's tissue tiles (PNG) to `out`; returns how many. Metadata: each tile's
  top-left corner at level 0, the slide's and the target microns per pixel."""
  slide = tiffslide.TiffSlide(path)
  base_mpp = slide_mpp(slide, path, mpp)
  span = tile * target_mpp / base_mpp  # tile side in level-0 pixels
  width, height = slide.dimensions
  cols, rows = int(width // span), int(height // span)
  if cols == 0 or rows == 0:
    raise ValueError(f"{path}: {width}x{height} px at {base_mpp} um/px holds no {tile} px tile "
                     f"at {target_mpp} um/px")
  # Thumbnail with 8 x 8 pixels per tile for the tissue fraction.
  thumb = np.asarray(slide.get_thumbnail((cols * 8, rows * 8)).convert("RGB")
                     .resize((cols * 8, rows * 8), Image.BILINEAR))
  tissue = tissue_mask(thumb).reshape(rows, 8, cols, 8).mean((1, 3))  # (rows, cols)
  level = slide.get_best_level_for_downsample(max(span / tile, 1.0))
  down = slide.level_downsamples[level]
  read = int(math.ceil(span / down))
  corners = []
  with records.AtomicRecords(out) as w:
    for r, c in tqdm(list(zip(*np.nonzero(tissue >= min_tissue))), desc=f"tiling {path}",
                     unit="tile"):
      x, y = int(round(c * span)), int(round(r * span))
      region = slide.read_region((x, y), level, (read, read)).convert("RGB")
      w.write(records.encode_png(region.resize((tile, tile), Image.BICUBIC)))
      corners.append((x, y))
    if not corners:
      raise ValueError(f"{path}: no tile has {min_tissue:.0%} tissue")
    w.meta.update(slide=path, corners=corners, slide_mpp=base_mpp, target_mpp=target_mpp,
                  tile=tile)
  return len(corners)


class TileSource:
  """Random access to a tiled slide's encoded tiles (the input of data.pipeline)."""

  def __init__(self, path: str):
    self._records, self.meta = records.read(path, "wsi.tile_slide")

  def __len__(self):
    return len(self.meta["corners"])

  def __getitem__(self, i):
    return self._records[i]
