"""Feature extraction throughput (eval.py's embedding step), per backbone.

    python benchmarks/features.py                     # tiny models, CPU
    python benchmarks/features.py --size paper        # the paper's backbones, 224 px (GPU)

Images/s of mvhybrid_jax.eval.features.extract on random uint8 patches, end to end (decode-free
arrays, normalisation, padded batches, the jitted forward on all local devices, copy back),
after one warm-up call that compiles. Ratios to the first backbone are measured in this run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import numpy as np
from flax import nnx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.scan import write_results  # noqa: E402
from mvhybrid_jax import models  # noqa: E402
from mvhybrid_jax.eval import features  # noqa: E402

TINY = dict(dim=32, depth=2, num_heads=2)


def bench(name, size, images, batch_size, dtype):
  overrides = TINY if size == "tiny" else {}
  model = models.create(name, rngs=nnx.Rngs(0), dtype=dtype, **overrides)
  t0 = time.perf_counter()
  features.extract(model, images[:batch_size], batch_size=batch_size, desc=f"{name} warm-up")
  compile_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  feats = features.extract(model, images, batch_size=batch_size, desc=name)
  seconds = time.perf_counter() - t0
  return dict(name=name, images=len(images), side=images.shape[1], batch=batch_size,
              dtype=dtype, compile_s=compile_s, seconds=seconds,
              images_per_s=len(images) / seconds, dim=feats.shape[1])


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--size", default="tiny", choices=["tiny", "paper"])
  p.add_argument("--backbones", default=",".join(models.names()))
  p.add_argument("--images", type=int, default=None)
  p.add_argument("--side", type=int, default=224)
  p.add_argument("--batch", type=int, default=None)
  p.add_argument("--dtype", default=None, choices=["float32", "bfloat16"])
  p.add_argument("--out", default="benchmarks/out/features.json")
  args = p.parse_args(argv)
  paper = args.size == "paper"
  n = args.images or (4096 if paper else 64)
  batch = args.batch or (256 if paper else 16)
  dtype = args.dtype or ("bfloat16" if paper else "float32")
  images = np.random.default_rng(0).integers(0, 256, (n, args.side, args.side, 3), np.uint8)
  print(f"# feature extraction, {args.size} backbones, {n} images of {args.side} px, batch "
        f"{batch}, {dtype}, on {jax.local_device_count()} x {jax.devices()[0].device_kind}",
        flush=True)
  print(f"{'backbone':>9} {'compile s':>9} {'img/s':>9} {'ratio':>6}", flush=True)
  rows = []
  for name in args.backbones.split(","):
    r = bench(name, args.size, images, batch, dtype)
    r["ratio"] = rows[0]["images_per_s"] / r["images_per_s"] if rows else 1.0  # time ratio
    rows.append(r)
    print(f"{name:>9} {r['compile_s']:9.1f} {r['images_per_s']:9.1f} {r['ratio']:6.2f}",
          flush=True)
  write_results(args.out, rows=rows)


if __name__ == "__main__":
  main()
