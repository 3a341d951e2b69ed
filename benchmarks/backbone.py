"""Forward throughput, compile time and peak memory of every backbone; time versus image size.

    python benchmarks/backbone.py                      # 256 px table + 224..1024 px sweep
    python benchmarks/backbone.py --small              # tiny models, for a CPU smoke run
    python benchmarks/backbone.py --dtype bfloat16 --batch 64 --out backbone.json

Part 1: for each registered backbone at 256 px, eval-mode forward (`embed`) images/s, the first
call's compile time and the device's peak memory (where the backend reports it). Part 2: mvhybrid
and vit_24 from 224 to 1024 px, seconds per batch and the ratio mvhybrid / vit_24, measured side
by side in one run. Target (issue 3): the ratio is at most 0.6 at 1024 px, where attention's
quadratic cost dominates the ViT and the scan stays linear.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.scan import time_fn  # noqa: E402
from mvhybrid_jax import models  # noqa: E402

SIZES = "224,512,1024"  # each size compiles both models again: keep the GPU run short
SMALL = dict(dim=64, num_heads=2)  # and a sixth of each model's depth


def peak_bytes():
  stats = jax.devices()[0].memory_stats() or {}
  return stats.get("peak_bytes_in_use")


def bench(name, side, batch, dtype, small, reps):
  overrides = {**SMALL, "depth": {"vit_12": 2}.get(name, 4)} if small else {}
  model = models.create(name, rngs=nnx.Rngs(0), dtype=dtype, **overrides)
  model.eval()
  graphdef, state = nnx.split(model)
  fwd = jax.jit(lambda state, x: nnx.merge(graphdef, state).embed(x))
  x = jnp.asarray(np.random.default_rng(0).standard_normal((batch, side, side, 3)), dtype)
  t0 = time.perf_counter()
  jax.block_until_ready(fwd(state, x))
  compile_s = time.perf_counter() - t0
  seconds = time_fn(fwd, state, x, reps=reps)
  return dict(name=name, side=side, batch=batch, dtype=jnp.dtype(dtype).name,
              seconds=seconds, images_per_s=batch / seconds, compile_s=compile_s,
              peak_bytes=peak_bytes(), params=models.count_params(model))


# A model whose first block is of each kind (models.create's layouts).
BLOCK_OF = {"mamba": "mvhybrid", "vim": "vim_einfft", "hydra": "hydra_einfft",
            "attention": "vit_24"}


def _convs(mixer):
  """The depthwise convs of an SSM mixer: [(name, DepthwiseConv1d)]."""
  if hasattr(mixer, "conv1d_x"):
    return [("conv1d_x", mixer.conv1d_x), ("conv1d_z", mixer.conv1d_z)]
  if hasattr(mixer, "forward"):
    return [("forward.conv1d", mixer.forward.conv1d)]
  return [("conv1d", mixer.conv1d)] if hasattr(mixer, "conv1d") else []


def parts(side, batch, dtype, reps):
  """Seconds of one block of each kind and of its parts at the backbone's token count, and each
  depthwise conv as nnx.Conv's grouped convolution beside our shifted multiply-adds."""
  rows = []
  tokens = (side // 16) ** 2 + 1
  for kind, name in BLOCK_OF.items():
    block = models.create(name, rngs=nnx.Rngs(0), depth=2, dtype=dtype).blocks[0]
    block.eval()
    dim = block.norm1.scale.shape[0]
    x = jnp.asarray(np.random.default_rng(0).standard_normal((batch, tokens, dim)), dtype)
    pieces = [("block", block), ("mixer", block.mixer), ("channel mixer", block.channel_mixer)]
    for label, module in pieces:
      graphdef, state = nnx.split(module)
      fn = jax.jit(lambda s, v, g=graphdef: nnx.merge(g, s)(v))
      rows.append(dict(kind=kind, part=label, seconds=time_fn(fn, state, x, reps=reps)))
    for label, conv in _convs(block.mixer):
      channels = conv.kernel.shape[-1]
      u = jnp.asarray(np.random.default_rng(1).standard_normal((batch, tokens, channels)), dtype)
      grouped = nnx.Conv(channels, channels, kernel_size=conv.kernel_size,
                         feature_group_count=channels, padding=conv.padding,
                         use_bias=conv.bias is not None, dtype=dtype, rngs=nnx.Rngs(0))
      nnx.update(grouped, nnx.state(conv, nnx.Param))
      for how, module in (("nnx.Conv", grouped), ("shifted adds", conv)):
        graphdef, state = nnx.split(module)
        fn = jax.jit(lambda s, v, g=graphdef: nnx.merge(g, s)(v))
        rows.append(dict(kind=kind, part=f"{label} ({how})",
                         seconds=time_fn(fn, state, u, reps=reps)))
  return rows


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--small", action="store_true", help="tiny models and sizes (CPU smoke run)")
  p.add_argument("--batch", type=int, default=None)
  p.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
  p.add_argument("--reps", type=int, default=5)
  p.add_argument("--sizes", default=SIZES, help="image sides for the mvhybrid/vit_24 sweep")
  p.add_argument("--parts", action="store_true",
                 help="only the per-block-part table (one block of each kind, paper width)")
  p.add_argument("--out", default="benchmarks/out/backbone.json")
  args = p.parse_args(argv)
  if args.parts:
    dtype, batch = jnp.dtype(args.dtype), args.batch or 16
    print(f"# one block of each kind at 224 px ({(224 // 16) ** 2 + 1} tokens), batch {batch}, "
          f"{dtype.name}, {jax.devices()[0].device_kind}, jax {jax.__version__}", flush=True)
    rows = parts(224, batch, dtype, args.reps)
    print("| block | part | ms |\n|---|---|---|")
    for r in rows:
      print(f"| {r['kind']} | {r['part']} | {r['seconds'] * 1e3:.1f} |")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + ".tmp", "w") as f:
      json.dump(dict(device=jax.devices()[0].device_kind, jax=jax.__version__,
                     date=time.strftime("%Y-%m-%d"), argv=sys.argv[1:], parts=rows), f, indent=1)
    os.replace(args.out + ".tmp", args.out)
    return
  dtype = jnp.dtype(args.dtype)
  batch = args.batch or (2 if args.small else 32)
  sizes = (64, 128) if args.small else [int(v) for v in args.sizes.split(",")]
  print(f"# backbones on {jax.devices()[0].device_kind}, jax {jax.__version__}, {dtype.name}, "
        f"batch {batch}{', tiny models' if args.small else ''}", flush=True)
  rows = []
  for name in models.names():
    r = bench(name, 128 if args.small else 256, batch, dtype, args.small, args.reps)
    rows.append(r)
    mem = f"{r['peak_bytes'] / 2**30:.2f} GiB" if r["peak_bytes"] else "n/a"
    print(f"{name:>9} {r['side']} px: {r['images_per_s']:9.1f} img/s  compile {r['compile_s']:6.1f} s"
          f"  peak {mem}  params {r['params']:,}", flush=True)
  sweep = []
  for side in sizes:
    pair = {name: bench(name, side, batch, dtype, args.small, args.reps)
            for name in ("mvhybrid", "vit_24")}
    ratio = pair["mvhybrid"]["seconds"] / pair["vit_24"]["seconds"]
    sweep.append(dict(side=side, mvhybrid_s=pair["mvhybrid"]["seconds"],
                      vit_24_s=pair["vit_24"]["seconds"], ratio=ratio))
    print(f"{side:>5} px: mvhybrid {pair['mvhybrid']['seconds'] * 1e3:9.2f} ms  "
          f"vit_24 {pair['vit_24']['seconds'] * 1e3:9.2f} ms  ratio {ratio:.2f}", flush=True)
  if not args.small:
    last = sweep[-1]
    print(f"# target {'met' if last['ratio'] <= 0.6 else 'MISSED'}: mvhybrid / vit_24 at "
          f"{last['side']} px = {last['ratio']:.2f} (<= 0.6)")
  result = dict(device=jax.devices()[0].device_kind, backend=jax.default_backend(),
                jax=jax.__version__, python=platform.python_version(),
                date=time.strftime("%Y-%m-%d"), argv=sys.argv[1:], backbones=rows, sweep=sweep)
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out + ".tmp", "w") as f:
    json.dump(result, f, indent=1)
  os.replace(args.out + ".tmp", args.out)
  print(f"# wrote {args.out}")


if __name__ == "__main__":
  main()
