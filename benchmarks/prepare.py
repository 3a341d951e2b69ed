"""Slides to shards (data.prepare): tiles/s per worker on synthetic pyramidal TIFFs, and the time
1,000 slides would take.

    python benchmarks/prepare.py [--slides 4] [--size 8192] [--workers 1,2]

Each slide: size x size px at 0.25 um/px (40x), zlib-compressed 256 px TIFF tiles with two
pyramid levels, tissue in textured blobs over about half of it; tiled at 0.5 um/px into 256 px
PNG tiles. The projection assumes a typical resection slide of 100,000 x 80,000 px at 0.25 um/px
with 40% tissue: about 12,200 tiles.
"""

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import tifffile
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from mvhybrid_jax.data import prepare  # noqa: E402

TYPICAL_TILES = round(100_000 * 80_000 / 512 ** 2 * 0.4)  # 256 px at 0.5 um/px = 512 px at 0.25


def write_slide(path: str, size: int, seed: int) -> None:
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:size // 64, 0:size // 64]
  blobs = np.zeros(yy.shape)
  for _ in range(6):  # a coarse tissue map of overlapping discs, about half the area
    cy, cx, r = rng.uniform(0, size // 64, 2).tolist() + [rng.uniform(0.12, 0.25) * size / 64]
    blobs += ((yy - cy) ** 2 + (xx - cx) ** 2) < r ** 2
  tissue = np.kron(blobs > 0, np.ones((64, 64), bool))
  img = np.full((size, size, 3), 242, np.uint8)
  noise = rng.integers(0, 60, (size, size), dtype=np.uint8)
  img[tissue] = np.stack([170 + noise, 60 + noise, 140 + noise], -1)[tissue]
  opts = dict(tile=(256, 256), photometric="rgb", compression="zlib",
              resolutionunit="CENTIMETER")
  with tifffile.TiffWriter(path, bigtiff=True) as tif:
    tif.write(img, subifds=2, resolution=(1e4 / 0.25, 1e4 / 0.25), **opts)
    tif.write(img[::2, ::2], subfiletype=1, resolution=(1e4 / 0.5, 1e4 / 0.5), **opts)
    tif.write(img[::4, ::4], subfiletype=1, resolution=(1e4 / 1.0, 1e4 / 1.0), **opts)


def png_levels(out: str, n: int = 50) -> dict:
  """PNG encode time and size per tile at zlib levels 1, 3 and 6 (PIL's default), side by side."""
  from mvhybrid_jax.data import augment, records
  src = records.Shards(out)
  tiles = [Image.fromarray(augment.decode(src[i])) for i in range(min(n, len(src)))]
  seconds, sizes = {}, {}
  for level in (1, 3, 6):
    t0 = time.perf_counter()
    total = 0
    for tile in tiles:
      buf = io.BytesIO()
      tile.save(buf, "PNG", compress_level=level)
      total += len(buf.getvalue())
    seconds[level] = (time.perf_counter() - t0) / len(tiles)
    sizes[level] = total / len(tiles)
  return dict(seconds=seconds, bytes=sizes)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--slides", type=int, default=4)
  p.add_argument("--size", type=int, default=8192, help="slide side in level-0 pixels")
  p.add_argument("--workers", default="1,2", help="comma-separated worker counts to time")
  p.add_argument("--out", default="benchmarks/out/prepare.json")
  args = p.parse_args(argv)
  tmp = tempfile.mkdtemp(prefix="bench_prepare_")
  try:
    slides = os.path.join(tmp, "slides")
    os.makedirs(slides)
    t0 = time.perf_counter()
    for i in range(args.slides):
      write_slide(os.path.join(slides, f"slide{i}.tif"), args.size, i)
    print(f"# {args.slides} slides of {args.size} x {args.size} px written in "
          f"{time.perf_counter() - t0:.0f} s")
    rows = []
    for workers in (int(w) for w in args.workers.split(",")):
      out = os.path.join(tmp, f"out{workers}")
      t0 = time.perf_counter()
      index = prepare.prepare(slides, out, mpp=0.5, tile=256, workers=workers)
      seconds = time.perf_counter() - t0
      tiles = sum(s["tiles"] for s in index["slides"])
      rate = tiles / seconds
      rows.append(dict(workers=workers, slides=len(index["slides"]), tiles=tiles,
                       seconds=seconds, tiles_per_s=rate, tiles_per_s_per_worker=rate / workers,
                       hours_for_1000_slides=1000 * TYPICAL_TILES / rate / 3600))
    png = png_levels(os.path.join(tmp, f"out{rows[0]['workers']}"))
    print("# PNG encoding of 50 of these tiles, ms per tile: " + ", ".join(
        f"zlib level {k} {v * 1e3:.1f} ms ({png['bytes'][k] / 1e3:.0f} kB)"
        for k, v in png["seconds"].items()) + " (records.encode_png uses 3)")
    print(f"\n| workers | slides | tiles | seconds | tiles/s | tiles/s per worker | "
          f"1,000 slides ({TYPICAL_TILES:,} tiles each) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
      print(f"| {r['workers']} | {r['slides']} | {r['tiles']} | {r['seconds']:.1f} | "
            f"{r['tiles_per_s']:.0f} | {r['tiles_per_s_per_worker']:.0f} | "
            f"{r['hours_for_1000_slides']:.1f} h |")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + ".tmp", "w") as f:
      json.dump(dict(slide_size=args.size, typical_tiles=TYPICAL_TILES, cpus=os.cpu_count(),
                     rows=rows, png=png), f, indent=1)
    os.replace(args.out + ".tmp", args.out)
  finally:
    shutil.rmtree(tmp)


if __name__ == "__main__":
  main()
