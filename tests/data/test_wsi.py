"""Whole-slide tiling on a small pyramidal TIFF written by the test."""

import io

import numpy as np
import pytest
import tifffile
from PIL import Image

from mvhybrid_jax.data import wsi


def write_slide(path, mpp=0.25, with_mpp=True):
  """2048 x 1024 px: the left half tissue (pink, textured), the right half glass (white)."""
  rng = np.random.default_rng(0)
  img = np.full((1024, 2048, 3), 242, np.uint8)
  tissue = np.stack([rng.integers(170, 230, (1024, 1024)), rng.integers(60, 140, (1024, 1024)),
                     rng.integers(140, 200, (1024, 1024))], -1)
  img[:, :1024] = tissue
  opts = dict(tile=(256, 256), photometric="rgb", compression="zlib")
  res = lambda m: dict(resolution=(1e4 / m, 1e4 / m), resolutionunit="CENTIMETER") if with_mpp else {}
  with tifffile.TiffWriter(path) as tif:
    tif.write(img, subifds=2, **opts, **res(mpp))
    tif.write(img[::2, ::2], subfiletype=1, **opts, **res(2 * mpp))
    tif.write(img[::4, ::4], subfiletype=1, **opts, **res(4 * mpp))
  return img


def test_otsu_on_a_bimodal_histogram():
  values = np.concatenate([np.full(500, 20), np.full(500, 200)]).astype(np.uint8)
  assert 20 <= wsi.otsu_threshold(values) < 200


def test_tiles_tissue_only_at_the_target_resolution(tmp_path):
  img = write_slide(str(tmp_path / "s.tif"))
  out = str(tmp_path / "s.ar")
  n = wsi.tile_slide(str(tmp_path / "s.tif"), out, target_mpp=0.5, tile=256)
  src = wsi.TileSource(out)
  # 0.5 um/px tiles of 256 px cover 512 level-0 px: a 2 x 4 grid, tissue in the left 2 columns
  assert n == len(src) == 4
  assert sorted(src.meta["corners"]) == [[0, 0], [0, 512], [512, 0], [512, 512]]
  for i in range(n):
    tile = np.asarray(Image.open(io.BytesIO(src[i])))
    assert tile.shape == (256, 256, 3)
    x, y = src.meta["corners"][i]
    want = img[y:y + 512:2, x:x + 512:2].astype(float)  # level 1 = the same 2x downsample
    assert abs(tile.mean() - want.mean()) < 2 and tile.std() > 10


def test_missing_resolution_and_blank_slides(tmp_path):
  write_slide(str(tmp_path / "nompp.tif"), with_mpp=False)
  with pytest.raises(ValueError, match="does not record its microns per pixel"):
    wsi.tile_slide(str(tmp_path / "nompp.tif"), str(tmp_path / "o.ar"))
  assert wsi.tile_slide(str(tmp_path / "nompp.tif"), str(tmp_path / "o.ar"), mpp=0.25) == 4
  blank = np.full((512, 512, 3), 240, np.uint8)
  tifffile.imwrite(tmp_path / "blank.tif", blank, photometric="rgb",
                   resolution=(1e4 / 0.5, 1e4 / 0.5), resolutionunit="CENTIMETER")
  with pytest.raises(ValueError, match="no tile has 50% tissue"):
    wsi.tile_slide(str(tmp_path / "blank.tif"), str(tmp_path / "b.ar"))
  assert not (tmp_path / "b.ar").exists()


def test_a_plain_image_tiles_like_the_same_pixels_in_a_tiff(tmp_path):
  """PNG/JPEG slides: the same grid and tiles as a TIFF of the same pixels; outside reads white."""
  img = write_slide(str(tmp_path / "s.tif"), mpp=0.5)
  Image.fromarray(img).save(tmp_path / "s.png")
  grids, tiles = [], []
  for name in ("s.tif", "s.png"):
    slide = wsi.open_slide(str(tmp_path / name))
    grid = wsi.tissue_grid(slide, name, target_mpp=0.5, tile=256, mpp=0.5)
    grids.append(grid)
    tiles.append(np.stack([wsi.read_tile(slide, grid, c, 256) for c in grid.corners]))
  assert grids[0].corners == grids[1].corners == [(0, 0), (256, 0), (512, 0), (768, 0),
                                                  (0, 256), (256, 256), (512, 256), (768, 256),
                                                  (0, 512), (256, 512), (512, 512), (768, 512),
                                                  (0, 768), (256, 768), (512, 768), (768, 768)]
  np.testing.assert_array_equal(tiles[0], tiles[1])
  np.testing.assert_array_equal(tiles[1][5], img[256:512, 256:512])
  png = wsi.open_slide(str(tmp_path / "s.png"))
  edge = np.asarray(png.read_region((2000, 1000), 0, (100, 50)))
  np.testing.assert_array_equal(edge[:24, :48], img[1000:, 2000:])
  assert (edge[24:] == 255).all() and (edge[:, 48:] == 255).all()


def test_open_slide_errors(tmp_path):
  with pytest.raises(ValueError, match="slide: .*missing.svs does not exist"):
    wsi.open_slide(str(tmp_path / "missing.svs"))
  (tmp_path / "fake.svs").write_text("not a slide")
  with pytest.raises(ValueError, match="cannot be opened as a whole-slide image"):
    wsi.open_slide(str(tmp_path / "fake.svs"))
  (tmp_path / "fake.png").write_bytes(b"\x89PNG broken")
  with pytest.raises(ValueError, match="cannot be opened"):
    wsi.open_slide(str(tmp_path / "fake.png"))
