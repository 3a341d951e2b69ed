"""predict.py end to end: tiles per second from slide to maps, for a random-init backbone.

    python benchmarks/predict.py                      # the smoke model, 64 px tiles, CPU
    python benchmarks/predict.py --size paper         # MV_Hybrid, 224 px tiles (GPU)

A synthetic slide of grid x grid spots is rendered as a PNG, a probe is fitted on another
slide's spots with that backbone, and mvhybrid_jax.predict.run is timed after one untimed run:
tissue detection, tile reads, model creation and compilation (as in every predict.py run),
embedding on all local devices, the probe, the .h5ad, eight maps and the summary.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import types

import jax
import numpy as np
from flax import nnx
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.scan import write_results  # noqa: E402
from mvhybrid_jax import models, predict  # noqa: E402
from mvhybrid_jax.data import synthetic  # noqa: E402
from mvhybrid_jax.eval import features, probes  # noqa: E402

TINY = dict(dim=32, depth=2, num_heads=2, dtype="float32")


def fitted_probe(path, settings, side, batch):
  """A probe for the random-init backbone `settings`, fitted on a synthetic slide's spots."""
  studies = synthetic.make_studies(4, 0)
  genes = synthetic.make_gene_model(50, seed=0)
  train = synthetic.make_slide(np.random.default_rng(1), studies[0], genes, "train", "train",
                               (8, 8), side)
  model = models.from_settings(settings, rngs=nnx.Rngs(0))
  feats = features.extract(model, list(train.patches), batch_size=batch, desc="probe spots")
  y = np.log1p(train.counts.astype(np.float64))
  probe = probes.Probe().fit(feats, y)
  meta = probes.probe_meta(label=f"random {settings['name']}", checkpoint="random",
                           settings=settings, seed=0, model=model, embedding="cls+mean",
                           mpp=synthetic.MPP, tile=side, data="benchmark", n_spots=len(y))
  probes.save_probe(path, probes.export_probe(probe, genes.names, meta, intercept=y.mean(0)))


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--size", default="tiny", choices=["tiny", "paper"])
  p.add_argument("--grid", type=int, default=None, help="spots per side of the slide")
  p.add_argument("--batch", type=int, default=None)
  p.add_argument("--out", default="benchmarks/out/predict.json")
  args = p.parse_args(argv)
  paper = args.size == "paper"
  grid = args.grid or (40 if paper else 12)
  batch = args.batch or (256 if paper else 16)
  side = 224 if paper else 64
  settings = {"name": "mvhybrid", **({"dtype": "bfloat16"} if paper else TINY)}
  with tempfile.TemporaryDirectory() as tmp:
    slide = synthetic.make_slide(np.random.default_rng(2), synthetic.make_studies(4, 0)[1],
                                 synthetic.make_gene_model(50, seed=0), "s", "s", (grid, grid),
                                 side)
    image, kept = synthetic.slide_image(slide)
    Image.fromarray(image).save(os.path.join(tmp, "slide.png"))
    fitted_probe(os.path.join(tmp, "probe.npz"), settings, side, batch)
    config = types.SimpleNamespace(slide=os.path.join(tmp, "slide.png"), slide_mpp=synthetic.MPP,
                                   probe=os.path.join(tmp, "probe.npz"), checkpoint="", genes="",
                                   max_genes=8, min_tissue=0.5, batch_size=batch, seed=0)
    print(f"# predict.py end to end, {args.size} mvhybrid, a {image.shape[1]} x {image.shape[0]} "
          f"px slide ({len(kept)} spots of {side} px), batch {batch}, on "
          f"{jax.local_device_count()} x {jax.devices()[0].device_kind}", flush=True)
    predict.run(config, os.path.join(tmp, "warm-up"))
    t0 = time.perf_counter()
    result = predict.run(config, os.path.join(tmp, "timed"))
    seconds = time.perf_counter() - t0
  row = dict(size=args.size, tiles=result["tiles"], side=side, batch=batch, seconds=seconds,
             tiles_per_s=result["tiles"] / seconds)
  print(f"{'tiles':>6} {'seconds':>8} {'tiles/s':>8}")
  print(f"{row['tiles']:>6} {row['seconds']:8.1f} {row['tiles_per_s']:8.1f}")
  write_results(args.out, rows=[row])


if __name__ == "__main__":
  main()
