"""Multi-crop augmentation throughput per worker, and the workers one GPU step needs.

    python benchmarks/augment.py [--n 50] [--recipe mvhybrid] [--per-gpu-batch 64]

One worker = one process running MultiCrop on 256 px uint8 patches. The paper's step feeds 64
images per GPU; the table gives the workers per GPU needed to keep up at several step times (the
GPU step time of a run is what train.py logs).
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from mvhybrid_jax.data import augment, masking  # noqa: E402


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--n", type=int, default=50, help="images to augment")
  p.add_argument("--recipe", default="mvhybrid")
  p.add_argument("--per-gpu-batch", type=int, default=64)
  p.add_argument("--out", default="benchmarks/out/augment.json")
  args = p.parse_args(argv)
  mc = augment.MultiCrop(augment.MultiCropConfig.recipe(args.recipe))
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (8, 256, 256, 3), dtype=np.uint8)
  mc(images[0], rng)  # warm-up
  t0 = time.perf_counter()
  for i in range(args.n):
    mc(images[i % len(images)], rng)
  per_image = (time.perf_counter() - t0) / args.n
  t0 = time.perf_counter()
  for _ in range(20):
    masking.batch_masks(rng, args.per_gpu_batch, (16, 16))
  mask_s = (time.perf_counter() - t0) / 20
  rate = 1.0 / per_image
  print(f"# multi-crop ({args.recipe}): {rate:.1f} images/s per worker "
        f"({per_image * 1e3:.1f} ms per image); iBOT masks: {mask_s * 1e3:.2f} ms per batch of "
        f"{args.per_gpu_batch}")
  rows = []
  for step_s in (0.1, 0.2, 0.5, 1.0):
    workers = math.ceil(args.per_gpu_batch / (rate * step_s))
    rows.append(dict(step_seconds=step_s, workers_per_gpu=workers))
    print(f"  GPU step {step_s:4.1f} s x {args.per_gpu_batch} images: {workers:3d} workers per GPU")
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out + ".tmp", "w") as f:
    json.dump(dict(recipe=args.recipe, images_per_s_per_worker=rate, mask_batch_s=mask_s,
                   workers=rows), f, indent=1)
  os.replace(args.out + ".tmp", args.out)


if __name__ == "__main__":
  main()
