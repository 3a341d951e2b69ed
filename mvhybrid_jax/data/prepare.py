"""Whole slides to pretraining shards, many slides at a time.

  python -m mvhybrid_jax.data.prepare SLIDES OUT --mpp 0.5 --tile 256 --workers 8
  python -m mvhybrid_jax.data.prepare slides.txt OUT --hosts 4 --host $RANK    # each host a share

SLIDES: a folder (searched recursively for whole-slide images and PNG/JPEG) or a text file of
slide paths. OUT gets one shard per slide, the slide's tissue tiles at --mpp as PNG in an
ArrayRecord (wsi.tile_slide: <slide path under SLIDES, / as __>.array_record and its JSON), and an
index of this host's share: index.json (index-K-of-N.json with --hosts N), each slide with its
shard and tile count or the reason it failed. Run it again to resume: slides with a shard are
skipped, a failed slide is tried again, and a killed run leaves no half-written shard (shards are
written under .incomplete names and renamed). train.py reads OUT (config.data.path=OUT).
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import multiprocessing
import os
import time

from absl import flags
from tqdm import tqdm

from mvhybrid_jax.data import records, wsi

SLIDE_SUFFIXES = (".svs", ".tif", ".tiff", ".ndpi", ".scn", ".bif", ".vms", *wsi.IMAGE_SUFFIXES)
log = logging.getLogger(__name__)


def list_slides(spec: str) -> tuple[list[str], str]:
  """(slide paths, sorted; the folder their shard names are relative to)."""
  if os.path.isfile(spec):
    base = os.path.dirname(os.path.abspath(spec))
    with open(spec) as f:
      paths = [os.path.normpath(os.path.join(base, line.strip())) for line in f if line.strip()]
    if not paths:
      raise ValueError(f"{spec}: the list file names no slides")
    return sorted(set(paths)), os.path.commonpath([os.path.dirname(p) for p in paths])
  if not os.path.isdir(spec):
    raise ValueError(f"{spec}: expected a folder of slides or a text file listing them; it does "
                     "not exist")
  paths = sorted(os.path.join(d, n) for d, _, names in os.walk(spec) for n in names
                 if n.lower().endswith(SLIDE_SUFFIXES))
  if not paths:
    raise ValueError(f"{spec}: no slides ({', '.join(SLIDE_SUFFIXES)}) found")
  return paths, spec


def shard_name(slide: str, root: str) -> str:
  """The slide's path under root, flattened: a/b.svs -> a__b.svs.array_record (unique per slide)."""
  return os.path.relpath(slide, root).replace(os.sep, "__") + records.SUFFIX


def share(slides: list[str], host: int, hosts: int) -> list[str]:
  """Host `host`'s slides of `hosts`: every hosts-th, so shares are disjoint, complete and even."""
  if not 0 <= host < hosts:
    raise ValueError(f"--host: expected 0 <= host < hosts, got host={host}, hosts={hosts}")
  return slides[host::hosts]


def _tile(slide: str, out: str, options: dict, fallback_mpp: float | None):
  """One slide in a worker: (slide, tiles or None, why not, seconds). fallback_mpp: the slide's
  microns per pixel if it records none."""
  start = time.perf_counter()
  try:
    mpp = None  # the slide's own; opened once more only to see whether it records one
    if fallback_mpp is not None and not wsi.open_slide(slide).properties.get("tiffslide.mpp-x"):
      mpp = fallback_mpp
    n = wsi.tile_slide(slide, out, progress=False, mpp=mpp, **options)
    return slide, n, "", time.perf_counter() - start
  except ValueError as e:  # ours: says what is wrong
    return slide, None, str(e), time.perf_counter() - start
  except Exception as e:  # noqa: BLE001 -- a reader's error: reported, the other slides go on
    return slide, None, (f"cannot be read ({type(e).__name__}: {e}): a damaged or truncated "
                         "file?"), time.perf_counter() - start


def _write_json(path: str, data) -> None:
  with open(path + ".incomplete", "w") as f:
    json.dump(data, f, indent=1)
  os.replace(path + ".incomplete", path)


def prepare(slides_spec: str, out: str, *, mpp: float = 0.5, tile: int = 256,
            min_tissue: float = 0.5, slide_mpp: float | None = None, workers: int = 1,
            host: int = 0, hosts: int = 1) -> dict:
  """Tiles this host's share of the slides into OUT (see the module's docstring); returns the
  index: {"slides": [{"slide", "shard", "tiles"}], "failed": [{"slide", "reason"}], ...}."""
  if workers < 1:
    raise ValueError(f"--workers: expected an integer >= 1, got {workers}")
  slides, root = list_slides(slides_spec)
  mine = share(slides, host, hosts)
  os.makedirs(out, exist_ok=True)
  index_path = os.path.join(out, "index.json" if hosts == 1 else
                            f"index-{host:05d}-of-{hosts:05d}.json")
  options = dict(target_mpp=mpp, tile=tile, min_tissue=min_tissue)
  index = dict(slides_from=os.path.abspath(slides_spec), mpp=mpp, tile=tile,
               min_tissue=min_tissue, slide_mpp=slide_mpp, host=host, hosts=hosts, slides=[],
               failed=[])
  todo = []
  for slide in mine:
    shard = os.path.join(out, shard_name(slide, root))
    for leftover in (shard + ".incomplete", shard + ".json.incomplete"):
      if os.path.exists(leftover):  # a killed run's
        os.remove(leftover)
    if os.path.exists(shard):
      with open(shard + ".json") as f:
        tiles = len(json.load(f)["corners"])
      index["slides"].append(dict(slide=slide, shard=os.path.basename(shard), tiles=tiles))
    else:
      todo.append((slide, shard))
  log.info("%d slides, %d of them this host's (%d of %d); %d already tiled, %d to tile",
           len(slides), len(mine), host, hosts, len(mine) - len(todo), len(todo))
  shards = dict(todo)
  bar = tqdm(total=len(mine), initial=len(mine) - len(todo), desc=f"tiling slides into {out}",
             unit="slide")

  def done(result):
    slide, n, reason, seconds = result
    if n is None:
      index["failed"].append(dict(slide=slide, reason=reason))
      log.warning("%s: skipped: %s", slide, reason)
    else:
      index["slides"].append(dict(slide=slide, shard=os.path.basename(shards[slide]), tiles=n))
      log.info("%s: %d tiles in %.1f s", slide, n, seconds)
    index["slides"].sort(key=lambda s: s["slide"])
    _write_json(index_path, index)
    bar.update()
    bar.set_postfix(tiles=sum(s["tiles"] for s in index["slides"]), failed=len(index["failed"]))

  if workers == 1 or len(todo) <= 1:
    for slide, shard in todo:
      done(_tile(slide, shard, options, slide_mpp))
  else:  # spawn: workers start clean, whatever threads this process holds
    with concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn")) as pool:
      futures = [pool.submit(_tile, slide, shard, options, slide_mpp) for slide, shard in todo]
      for future in concurrent.futures.as_completed(futures):
        done(future.result())
  bar.close()
  _write_json(index_path, index)
  tiles = sum(s["tiles"] for s in index["slides"])
  log.info("%s: %d slides, %d tiles; %d failed (listed in %s)", out, len(index["slides"]), tiles,
           len(index["failed"]), index_path)
  return index


def define_flags() -> None:
  """The command line's flags (defined only when run as a command, not on import)."""
  flags.DEFINE_float("mpp", 0.5, "Microns per pixel of the tiles.")
  flags.DEFINE_integer("tile", 256, "Tile side in pixels.")
  flags.DEFINE_float("min_tissue", 0.5, "Least tissue fraction of a kept tile.")
  flags.DEFINE_float("slide_mpp", None, "Microns per pixel of slides that do not record theirs "
                     "(PNG/JPEG, some TIFFs).")
  flags.DEFINE_integer("workers", 1, "Slides tiled in parallel (processes).")
  flags.DEFINE_integer("host", 0, "This host's index, 0 .. hosts - 1.")
  flags.DEFINE_integer("hosts", 1, "Hosts sharing the slides; each tiles every hosts-th.")


def main(argv):
  if len(argv) != 3:
    raise ValueError(f"usage: python -m mvhybrid_jax.data.prepare SLIDES OUT [--mpp 0.5 "
                     f"--tile 256 --workers 8]; got {argv[1:]}")
  from absl import logging as absl_logging
  absl_logging.set_verbosity(absl_logging.INFO)
  f = flags.FLAGS
  index = prepare(argv[1], argv[2], mpp=f.mpp, tile=f.tile, min_tissue=f.min_tissue,
                  slide_mpp=f.slide_mpp, workers=f.workers, host=f.host, hosts=f.hosts)
  print(f"{len(index['slides'])} slides, {sum(s['tiles'] for s in index['slides'])} tiles in "
        f"{argv[2]}; {len(index['failed'])} failed"
        + "".join(f"\n  {x['slide']}: {x['reason']}" for x in index["failed"]))


if __name__ == "__main__":
  from mvhybrid_jax import cli
  define_flags()
  cli.run(main)
