"""Whole-slide images (.svs, .tif, .ndpi, ... read by tiffslide; plain PNG/JPEG too) tiled at a
target resolution, tissue only, into ArrayRecord or in memory (tissue_grid + read_tile).

    n = tile_slide("slide.svs", "slide.array_record", target_mpp=0.5)   # 256 px tiles

Tissue detection: Otsu's threshold on the saturation of a low-resolution thumbnail (background
glass is bright and grey); a tile is kept if at least `min_tissue` of it is tissue. Tiles are
read from the pyramid level closest above the needed resolution and resized to `tile` pixels.
"""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np
import tiffslide
from PIL import Image
from tqdm import tqdm


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


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class ImageSlide:
  """A plain PNG/JPEG as a one-level slide, with the part of tiffslide's interface the tiler uses."""

  def __init__(self, path: str):
    Image.MAX_IMAGE_PIXELS = None  # a slide may be large by design; the file is the user's own
    self._image = Image.open(path).convert("RGB")
    self.dimensions = self._image.size  # (width, height)
    self.level_downsamples = (1.0,)
    self.properties = {}

  def get_best_level_for_downsample(self, downsample: float) -> int:
    return 0

  def read_region(self, location, level: int, size) -> Image.Image:
    """Outside the image reads as white glass, as in a scanner's margin."""
    (x, y), (w, h) = location, size
    region = Image.new("RGB", (w, h), (255, 255, 255))
    inside = self._image.crop((max(x, 0), max(y, 0), min(x + w, self.dimensions[0]),
                               min(y + h, self.dimensions[1])))
    region.paste(inside, (max(x, 0) - x, max(y, 0) - y))
    return region

  def get_thumbnail(self, size) -> Image.Image:
    thumb = self._image.copy()
    thumb.thumbnail(size)
    return thumb


def open_slide(path: str):
  """A pyramidal TIFF/SVS/NDPI/... (tiffslide) or a plain PNG/JPEG (ImageSlide)."""
  if not os.path.isfile(path):
    raise ValueError(f"slide: {path} does not exist")
  try:
    if path.lower().endswith(IMAGE_SUFFIXES):
      return ImageSlide(path)
    return tiffslide.TiffSlide(path)
  except Exception as e:  # each reader raises its own types
    raise ValueError(f"slide: {path} cannot be opened as a whole-slide image (pyramidal TIFF, "
                     f"SVS, ...) or a PNG/JPEG: {type(e).__name__}: {e}") from e


def slide_mpp(slide, path: str, mpp: float | None) -> float:
  if mpp is not None:
    return float(mpp)
  value = slide.properties.get("tiffslide.mpp-x")
  if not value:
    raise ValueError(f"{path}: the slide does not record its microns per pixel; pass mpp=")
  return float(value)


@dataclasses.dataclass
class Grid:
  """A slide's tissue tiles at a target resolution."""
  corners: list[tuple[int, int]]  # top-left corners at level 0, (x, y)
  cells: list[tuple[int, int]]    # (row, col) on the tile grid
  tissue: np.ndarray              # (rows, cols) tissue fraction of every grid cell
  span: float                     # tile side in level-0 pixels
  level: int                      # the pyramid level read
  read: int                       # tile side in that level's pixels
  slide_mpp: float
  thumbnail: np.ndarray           # (rows * 8, cols * 8, 3) uint8


def tissue_grid(slide, path: str, *, target_mpp: float = 0.5, tile: int = 256,
                min_tissue: float = 0.5, mpp: float | None = None) -> Grid:
  """The grid of `tile`-pixel tiles at target_mpp whose tissue fraction is at least min_tissue."""
  base_mpp = slide_mpp(slide, path, mpp)
  span = tile * target_mpp / base_mpp
  width, height = slide.dimensions
  cols, rows = int(width // span), int(height // span)
  if cols == 0 or rows == 0:
    raise ValueError(f"{path}: {width}x{height} px at {base_mpp} um/px holds no {tile} px tile "
                     f"at {target_mpp} um/px")
  # Thumbnail with 8 x 8 pixels per tile for the tissue fraction.
  thumb = np.asarray(slide.get_thumbnail((cols * 8, rows * 8)).convert("RGB")
                     .resize((cols * 8, rows * 8), Image.BILINEAR))
  tissue = tissue_mask(thumb).reshape(rows, 8, cols, 8).mean((1, 3))  # (rows, cols)
  cells = [(int(r), int(c)) for r, c in zip(*np.nonzero(tissue >= min_tissue))]
  if not cells:
    raise ValueError(f"{path}: no tile has {min_tissue:.0%} tissue")
  level = slide.get_best_level_for_downsample(max(span / tile, 1.0))
  read = int(math.ceil(span / slide.level_downsamples[level]))
  return Grid(corners=[(int(round(c * span)), int(round(r * span))) for r, c in cells],
              cells=cells, tissue=tissue, span=span, level=level, read=read, slide_mpp=base_mpp,
              thumbnail=thumb)


def read_tile(slide, grid: Grid, corner, tile: int) -> np.ndarray:
  """uint8 (tile, tile, 3): the tile at a level-0 corner, read from grid.level and resized."""
  region = slide.read_region(corner, grid.level, (grid.read, grid.read)).convert("RGB")
  return np.asarray(region.resize((tile, tile), Image.BICUBIC))


def tile_slide(path: str, out: str, *, target_mpp: float = 0.5, tile: int = 256,
               min_tissue: float = 0.5, mpp: float | None = None, progress: bool = True) -> int:
  """Writes the slide's tissue tiles (PNG) to `out`; returns how many. Metadata: each tile's
  top-left corner at level 0, the slide's and the target microns per pixel."""
  from mvhybrid_jax.data import records  # array_record: only for writing and reading tile files
  slide = open_slide(path)
  grid = tissue_grid(slide, path, target_mpp=target_mpp, tile=tile, min_tissue=min_tissue,
                     mpp=mpp)
  with records.AtomicRecords(out) as w:
    for corner in tqdm(grid.corners, desc=f"tiling {path}", unit="tile", disable=not progress):
      w.write(records.encode_png(read_tile(slide, grid, corner, tile)))
    w.meta.update(slide=path, corners=grid.corners, slide_mpp=grid.slide_mpp,
                  target_mpp=target_mpp, tile=tile)
  return len(grid.corners)


class TileSource:
  """Random access to a tiled slide's encoded tiles (the input of data.pipeline)."""

  def __init__(self, path: str):
    from mvhybrid_jax.data import records
    self._records, self.meta = records.read(path, "wsi.tile_slide")

  def __len__(self):
    return len(self.meta["corners"])

  def __getitem__(self, i):
    return self._records[i]
