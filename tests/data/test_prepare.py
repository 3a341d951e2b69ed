"""Slides to pretraining shards: a folder of small pyramidal TIFFs and PNGs with a corrupt file,
in parallel, killed mid-run and resumed (the same tiles as an uninterrupted run), shared between
hosts, and read back as one source by train.py."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from mvhybrid_jax.data import augment, pipeline, prepare, records
from tests.data.test_wsi import write_slide


def write_slides(root):
  """3 pyramidal TIFFs (two in a sub-folder, two resolutions), 2 PNGs without a resolution, a
  corrupt .svs and a file that is not a slide."""
  (root / "case1").mkdir(parents=True)
  write_slide(str(root / "case1" / "a.tif"))
  write_slide(str(root / "case1" / "b.tif"), mpp=0.5)
  write_slide(str(root / "c.tif"))
  rng = np.random.default_rng(0)
  for name in ("d.png", "e.png"):
    img = np.full((1024, 1024, 3), 240, np.uint8)  # at 0.25 um/px: 2 x 2 tiles, the left ones
    img[:, :512] = np.stack([rng.integers(170, 230, (1024, 512)),
                             rng.integers(60, 140, (1024, 512)),
                             rng.integers(140, 200, (1024, 512))], -1)
    Image.fromarray(img).save(root / name)
  (root / "broken.svs").write_bytes((root / "c.tif").read_bytes()[:5000])  # truncated
  (root / "notes.txt").write_text("not a slide")


def shard_bytes(out):
  """{shard: [record bytes]} of every shard in out."""
  return {os.path.basename(p): [records.Shards(p)[i] for i in range(len(records.Shards(p)))]
          for p in records.shard_paths(str(out))}


KILL = """
import os, signal, sys
from mvhybrid_jax.data import prepare, wsi
read, calls = wsi.read_tile, [0]
def read_then_die(*a, **k):
  calls[0] += 1
  if calls[0] == 7:  # in the second slide (4 tiles in the first): killed, no cleanup
    os.kill(os.getpid(), signal.SIGKILL)
  return read(*a, **k)
wsi.read_tile = read_then_die
prepare.prepare(sys.argv[1], sys.argv[2], slide_mpp=0.25, workers=1)
"""


def test_killed_and_resumed_gives_the_tiles_of_an_uninterrupted_run(tmp_path):
  slides = tmp_path / "slides"
  write_slides(slides)
  whole = prepare.prepare(str(slides), str(tmp_path / "whole"), slide_mpp=0.25, workers=2)
  assert [(s["shard"], s["tiles"]) for s in whole["slides"]] == [
      ("c.tif.array_record", 4), ("case1__a.tif.array_record", 4),
      ("case1__b.tif.array_record", 16), ("d.png.array_record", 2), ("e.png.array_record", 2)]
  assert [f["slide"] for f in whole["failed"]] == [str(slides / "broken.svs")]
  assert whole["failed"][0]["reason"].startswith("cannot be read (")
  assert json.loads((tmp_path / "whole" / "index.json").read_text()) == whole

  out = tmp_path / "resumed"
  killed = subprocess.run([sys.executable, "-c", KILL, str(slides), str(out)], cwd=os.getcwd(),
                          capture_output=True, text=True)
  assert killed.returncode == -9, killed.stderr
  left = sorted(os.listdir(out))
  assert "c.tif.array_record" in left and "case1__a.tif.array_record.incomplete" in left
  assert not any(n.startswith("case1__a.tif.array_record") and not n.endswith(".incomplete")
                 for n in left)  # no half-written shard in place
  index = json.loads((out / "index.json").read_text())
  assert [s["shard"] for s in index["slides"]] == ["c.tif.array_record"]

  resumed = prepare.prepare(str(slides), str(out), slide_mpp=0.25, workers=1)
  assert not [n for n in os.listdir(out) if n.endswith(".incomplete")]
  assert resumed["slides"] == [{**s, "slide": s["slide"]} for s in whole["slides"]]
  assert shard_bytes(out) == shard_bytes(tmp_path / "whole")
  again = prepare.prepare(str(slides), str(out), slide_mpp=0.25)  # nothing left but the bad one
  assert again["slides"] == resumed["slides"] and len(again["failed"]) == 1


def test_hosts_take_disjoint_shares(tmp_path):
  slides = tmp_path / "slides"
  write_slides(slides)
  listed, _ = prepare.list_slides(str(slides))
  shares = [prepare.share(listed, h, 3) for h in range(3)]
  assert sorted(sum(shares, [])) == listed and sum(len(s) for s in shares) == len(listed) == 6
  assert max(map(len, shares)) - min(map(len, shares)) <= 1
  out = tmp_path / "out"
  for h in range(2):
    prepare.prepare(str(slides), str(out), slide_mpp=0.25, host=h, hosts=2)
  parts = [json.loads((out / f"index-{h:05d}-of-00002.json").read_text()) for h in range(2)]
  done = [s["slide"] for p in parts for s in p["slides"]] + [f["slide"] for p in parts
                                                             for f in p["failed"]]
  assert sorted(done) == listed
  with pytest.raises(ValueError, match=r"--host: expected 0 <= host < hosts, got host=2"):
    prepare.share(listed, 2, 2)


def test_training_reads_the_shards_as_one_source(tmp_path):
  slides = tmp_path / "slides"
  write_slides(slides)
  out = tmp_path / "out"
  index = prepare.prepare(str(slides), str(out), slide_mpp=0.25)
  total = sum(s["tiles"] for s in index["slides"])
  (tmp_path / "list.txt").write_text("out/c.tif.array_record\nout/d.png.array_record\n")
  for spec, n in ((str(out), total), (str(out / "case1__*.array_record"), 20),
                  (str(tmp_path / "list.txt"), 6), (str(out / "d.png.array_record"), 2)):
    assert len(records.Shards(spec)) == n
  src = records.Shards(str(out))
  # record 4 is the first of the second shard (sorted): case1__a.tif's first tile
  assert src.describe(4) == (f"{out}/case1__a.tif.array_record record 0 (tile at level-0 corner "
                             f"(0, 0) of {slides}/case1/a.tif)")
  assert augment.decode(src[total - 1]).shape == (256, 256, 3)
  batch = next(iter(pipeline.pretrain_dataset(src, batch_size=4, seed=0)))
  assert batch["global_crops"].shape[:2] == (4, 2)
  with pytest.raises(ValueError, match=r"nowhere does not exist"):
    records.Shards(str(tmp_path / "nowhere"))
  os.remove(out / "d.png.array_record.json")
  with pytest.raises(ValueError, match=r"1 of 5 shards lack the JSON .*d.png.array_record.json"):
    records.Shards(str(out))
