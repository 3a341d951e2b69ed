"""Forward time, compile time and memory of every backbone, against vit_24; time versus image size.

    python benchmarks/backbone.py                      # 256 px table + 224..1024 px sweep
    python benchmarks/backbone.py --small              # tiny models, for a CPU smoke run
    python benchmarks/backbone.py --dtype float32 --side 224 --batch 16 \
        --sizes 224:16,1024:1                          # issue 19's CPU goals
    python benchmarks/backbone.py --parts --dtype float32     # one block of each kind, its parts

Part 1: every registered backbone at --side px (256), eval-mode forward (`embed`): seconds per
batch, its ratio to vit_24 (the same depth in plain ViT blocks), images/s, the first call's
compile time and memory. Part 2: mvhybrid and vit_24 from 224 to 1024 px (--sizes
SIDE[:BATCH],...), seconds per batch, the ratio and memory of each. Every model of a part is
compiled first, then timed in --reps interleaved rounds: times are medians over rounds, ratios
the median of each round's ratio, so that the machine's drift between rounds cancels. Memory:
XLA's own account of the compiled forward (arguments + outputs + temporaries), and the device's
peak where the backend reports one (cumulative). Targets (issue 19), printed where a size has
one: 0.6 at 1024 px, where attention's quadratic cost dominates the ViT and the scan stays
linear; on CPU, at most 1.0 at 224 px for every SSM backbone.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.scan import interleaved_rounds, xla_bytes  # noqa: E402
from mvhybrid_jax import models  # noqa: E402
from mvhybrid_jax.models import einfft  # noqa: E402

SIZES = "224,512,1024"  # each size compiles both models again: keep the GPU run short
SMALL = dict(dim=64, num_heads=2)  # and a sixth of each model's depth
# mvhybrid / vit_24 at most this, by (side, backend or None for any): issue 19's goals
# ("block": a MambaVision block / a ViT block, --parts)
TARGETS = {(224, "cpu"): 1.0, (1024, None): 0.6, ("block", "cpu"): 1.0}


def peak_bytes():
  stats = jax.devices()[0].memory_stats() or {}
  return stats.get("peak_bytes_in_use")


def compile_forward(name, side, batch, dtype, small):
  """One backbone's jitted eval-mode `embed`, compiled and run once, with its input."""
  overrides = {**SMALL, "depth": {"vit_12": 2}.get(name, 4)} if small else {}
  model = models.create(name, rngs=nnx.Rngs(0), dtype=dtype, **overrides)
  model.eval()
  graphdef, state = nnx.split(model)
  x = jnp.asarray(np.random.default_rng(0).standard_normal((batch, side, side, 3)), dtype)
  t0 = time.perf_counter()
  compiled = jax.jit(lambda state, x: nnx.merge(graphdef, state).embed(x)).lower(
      state, x).compile()
  jax.block_until_ready(compiled(state, x))
  compile_s = time.perf_counter() - t0
  return dict(name=name, side=side, batch=batch, dtype=jnp.dtype(dtype).name,
              compile_s=compile_s, xla_bytes=xla_bytes(compiled), peak_bytes=peak_bytes(),
              params=models.count_params(model), call=lambda: compiled(state, x))


def interleaved(runs, reps):
  """Adds `seconds` (median) and `rounds` to each run: one call of each per round, `reps` rounds."""
  rounds = interleaved_rounds({i: r.pop("call") for i, r in enumerate(runs)}, reps)
  for i, r in enumerate(runs):
    r.update(rounds=rounds[i], seconds=statistics.median(rounds[i]))
    r["images_per_s"] = r["batch"] / r["seconds"]
  return runs


def paired_ratio(rounds, base_rounds):
  """The median over rounds of each round's time over the baseline's in the same round: a drift
  of the machine between rounds (+-10% here) cancels, where a ratio of medians keeps it."""
  return statistics.median(a / b for a, b in zip(rounds, base_rounds))


def _gib(n):
  if n is None:
    return "n/a"
  return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


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


def _ortho_dft(n):
  """The orthonormal DFT of length n as a real (2n, n) matrix: [cos; -sin] / sqrt(n)."""
  angle = 2 * np.pi * (np.outer(np.arange(n), np.arange(n)) % n) / n
  return jnp.asarray(np.concatenate([np.cos(angle), -np.sin(angle)]) / np.sqrt(n), jnp.float32)


def einfft_as_matmuls(module, x):
  """`module` (an EinFFT) with both transforms as real matmuls instead of jnp.fft: over the
  tokens a (2 m, m) DFT matrix, over the blocks a 4-point one. The same maths: a prime token
  count (197, 257) is the FFT's worst case and a small matmul a GPU's best (issue 19 asks for
  the two side by side on each backend)."""
  batch, m, dim = x.shape
  k, mm = module.num_blocks, functools.partial(jnp.einsum, precision="highest")
  fm, fk = _ortho_dft(m), _ortho_dft(k)
  h = x.astype(jnp.float32).reshape(batch, m, k, -1)  # (b, m, k, d)
  h = mm("fm,bmkd->bfkd", fm, h)  # (b, 2m, k, d): [real; imag] over the tokens
  hr, hi = h[:, :m], h[:, m:]
  # over the blocks, (hr + i hi)(cos - i sin)
  g = mm("gk,bfkd->bfgd", fk, hr), mm("gk,bfkd->bfgd", fk, hi)  # [cos; -sin] @ each part
  h = module.spectral(jnp.concatenate([g[0][:, :, :k] - g[1][:, :, k:],
                                       g[1][:, :, :k] + g[0][:, :, k:]], -1))
  d = h.shape[-1] // 2
  zr, zi = h[..., :d], h[..., d:]
  # the inverse over the blocks, (zr + i zi)(cos + i sin); over the tokens only the real part,
  # cos @ ur - sin @ ui = [cos; -sin]^T @ [ur; ui]
  g = mm("gk,bfkd->bfgd", fk, zr), mm("gk,bfkd->bfgd", fk, zi)
  ur, ui = g[0][:, :, :k] + g[1][:, :, k:], g[1][:, :, :k] - g[0][:, :, k:]
  out = mm("fm,bfkd->bmkd", fm, jnp.concatenate([ur, ui], axis=1))
  return out.reshape(batch, m, dim).astype(x.dtype)


def parts(side, batch, dtype, reps):
  """Seconds of one block of each kind and of its parts at the backbone's token count, each
  depthwise conv as nnx.Conv's grouped convolution beside our shifted multiply-adds, and EinFFT
  beside `einfft_as_matmuls`; every piece compiled first, then timed in `reps` interleaved
  rounds. Each block's row also has its paired ratio to the attention block."""
  rows, calls = [], {}
  tokens = (side // 16) ** 2 + 1

  def add(kind, label, fn, *args):
    jax.block_until_ready(fn(*args))  # compile and warm up
    calls[len(rows)] = lambda: fn(*args)
    rows.append(dict(kind=kind, part=label))

  for kind, name in BLOCK_OF.items():
    block = models.create(name, rngs=nnx.Rngs(0), depth=2, dtype=dtype).blocks[0]
    block.eval()
    dim = block.norm1.scale.shape[0]
    x = jnp.asarray(np.random.default_rng(0).standard_normal((batch, tokens, dim)), dtype)
    pieces = [("block", block, None), ("mixer", block.mixer, None),
              ("channel mixer", block.channel_mixer, None)]
    if isinstance(block.channel_mixer, einfft.EinFFT):
      pieces.append(("channel mixer (DFTs as matmuls)", block.channel_mixer, einfft_as_matmuls))
    for label, module, call in pieces:
      graphdef, state = nnx.split(module)
      call = call or type(module).__call__
      add(kind, label, jax.jit(lambda s, v, g=graphdef, c=call: c(nnx.merge(g, s), v)), state, x)
    for label, conv in _convs(block.mixer):
      channels = conv.kernel.shape[-1]
      u = jnp.asarray(np.random.default_rng(1).standard_normal((batch, tokens, channels)), dtype)
      grouped = nnx.Conv(channels, channels, kernel_size=conv.kernel_size,
                         feature_group_count=channels, padding=conv.padding,
                         use_bias=conv.bias is not None, dtype=dtype, rngs=nnx.Rngs(0))
      nnx.update(grouped, nnx.state(conv, nnx.Param))
      for how, module in (("nnx.Conv", grouped), ("shifted adds", conv)):
        graphdef, state = nnx.split(module)
        add(kind, f"{label} ({how})", jax.jit(lambda s, v, g=graphdef: nnx.merge(g, s)(v)),
            state, u)
  rounds = interleaved_rounds(calls, reps)
  attention = next(rounds[i] for i, r in enumerate(rows)
                   if r["kind"] == "attention" and r["part"] == "block")
  for i, r in enumerate(rows):
    r.update(seconds=statistics.median(rounds[i]), rounds=rounds[i])
    if r["part"] == "block":
      r["ratio_to_attention_block"] = paired_ratio(rounds[i], attention)
  return rows


def report_target(row, what, side, ratio):
  """Prints whether ratio meets issue 19's target at this size and backend, if it sets one, and
  notes it in row."""
  target = TARGETS.get((side, jax.default_backend()), TARGETS.get((side, None)))
  if target is None:
    return
  row["target"], row["target_met"] = target, ratio <= target
  where = f" at {side} px" if isinstance(side, int) else ""
  print(f"# target {'met' if row['target_met'] else 'MISSED'}: {what}{where} = {ratio:.2f} "
        f"(<= {target})")


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--small", action="store_true", help="tiny models and sizes (CPU smoke run)")
  p.add_argument("--batch", type=int, default=None)
  p.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
  p.add_argument("--reps", type=int, default=5)
  p.add_argument("--sizes", default=SIZES,
                 help="SIDE[:BATCH],... for the mvhybrid/vit_24 sweep (batch: --batch)")
  p.add_argument("--backbones", default=",".join(models.names()),
                 help="part 1's backbones, comma-separated; empty: only the sweep")
  p.add_argument("--side", type=int, default=256, help="part 1's image size, px")
  p.add_argument("--parts", action="store_true",
                 help="only the per-block-part table (one block of each kind, paper width)")
  p.add_argument("--out", default="benchmarks/out/backbone.json")
  args = p.parse_args(argv)
  if args.parts:
    dtype, batch = jnp.dtype(args.dtype), args.batch or 16
    print(f"# one block of each kind at 224 px ({(224 // 16) ** 2 + 1} tokens), batch {batch}, "
          f"{dtype.name}, {jax.devices()[0].device_kind}, jax {jax.__version__}", flush=True)
    rows = parts(224, batch, dtype, args.reps)
    print("| block | part | ms | / attention block |\n|---|---|---|---|")
    for r in rows:
      ratio = r.get("ratio_to_attention_block")
      print(f"| {r['kind']} | {r['part']} | {r['seconds'] * 1e3:.1f} | "
            f"{'' if ratio is None else f'{ratio:.2f}'} |")
    mamba = next(r for r in rows if r["kind"] == "mamba" and r["part"] == "block")
    report_target(mamba, "a MambaVision block / a ViT block", "block",
                  mamba["ratio_to_attention_block"])
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + ".tmp", "w") as f:
      json.dump(dict(device=jax.devices()[0].device_kind, jax=jax.__version__,
                     date=time.strftime("%Y-%m-%d"), argv=sys.argv[1:], parts=rows), f, indent=1)
    os.replace(args.out + ".tmp", args.out)
    return
  dtype = jnp.dtype(args.dtype)
  batch = args.batch or (2 if args.small else 32)
  sizes = ([(64, batch), (128, batch)] if args.small else
           [(int(v.split(":")[0]), int(v.split(":")[1]) if ":" in v else batch)
            for v in args.sizes.split(",")])
  print(f"# backbones on {jax.devices()[0].device_kind}, jax {jax.__version__}, {dtype.name}, "
        f"batch {batch} (where a size names none){', tiny models' if args.small else ''}; "
        f"{args.reps} interleaved rounds",
        flush=True)
  side = 128 if args.small else args.side
  names = [n for n in args.backbones.split(",") if n]
  unknown = sorted(set(names) - set(models.names()))
  if unknown:
    p.error(f"--backbones: unknown {unknown}; expected names from {models.names()}")
  if names and "vit_24" not in names:
    names.append("vit_24")  # the denominator of every ratio
  rows = interleaved([compile_forward(name, side, batch, dtype, args.small) for name in names],
                     args.reps)
  vit = next((r["rounds"] for r in rows if r["name"] == "vit_24"), None)
  if rows:
    print(f"| backbone ({side} px, batch {batch}) | s | / vit_24 | img/s | compile s | XLA memory "
          "| peak | params |\n|---|---|---|---|---|---|---|---|")
  for r in rows:
    r["ratio_to_vit_24"] = paired_ratio(r["rounds"], vit)
    print(f"| {r['name']} | {r['seconds']:.3f} | {r['ratio_to_vit_24']:.2f} | "
          f"{r['images_per_s']:.1f} | {r['compile_s']:.1f} | {_gib(r['xla_bytes'])} | "
          f"{_gib(r['peak_bytes'])} | {r['params']:,} |", flush=True)
  for r in rows if not args.small else []:
    if not r["name"].startswith("vit_"):  # the ViTs are the baseline
      report_target(r, f"{r['name']} / vit_24", side, r["ratio_to_vit_24"])
  sweep = []
  print("| size, batch | mvhybrid s | vit_24 s | ratio | mvhybrid XLA memory | vit_24 XLA memory |"
        "\n|---|---|---|---|---|---|")
  for side, n in sizes:
    mv, vit = interleaved([compile_forward(name, side, n, dtype, args.small)
                           for name in ("mvhybrid", "vit_24")], args.reps)
    sweep.append(dict(side=side, batch=n, mvhybrid_s=mv["seconds"], vit_24_s=vit["seconds"],
                      ratio=paired_ratio(mv["rounds"], vit["rounds"]),
                      mvhybrid_xla_bytes=mv["xla_bytes"], vit_24_xla_bytes=vit["xla_bytes"],
                      mvhybrid_rounds=mv["rounds"], vit_24_rounds=vit["rounds"]))
    print(f"| {side} px, {n} | {mv['seconds']:.3f} | {vit['seconds']:.3f} | "
          f"{sweep[-1]['ratio']:.2f} | {_gib(mv['xla_bytes'])} | {_gib(vit['xla_bytes'])} |",
          flush=True)
  for row in sweep if not args.small else []:
    report_target(row, "mvhybrid / vit_24", row["side"], row["ratio"])
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
