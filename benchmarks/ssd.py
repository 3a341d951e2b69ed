"""The SSD scan (kernels.ssd, Hydra's mixer): reference vs chunked, forward and forward+backward,
against a floor on GPU.

    python benchmarks/ssd.py              # Hydra's paper shapes: 2 x 64 slides (both directions),
                                          # 257 tokens, 12 heads x 64, state 64
    python benchmarks/ssd.py --small      # quick CPU run

On GPU the floor is the larger of the HBM time (read x, dt, B, C and write y once; the backward
pass reads them again with dy and writes their gradients) and the matmul time of the chunked
algorithm at the dense bf16 peak (989 TFLOPS, H100/H200). The issue's rule: write a Pallas SSD
kernel only if the chunked version is far from this floor.
"""

from __future__ import annotations

import argparse
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.scan import HBM_BYTES_PER_S, time_fn, write_results  # noqa: E402
from kernels import ssd  # noqa: E402

PEAK_FLOPS = 989.4e12


def inputs(batch, length, heads, head_dim, state, dtype):
  rng = np.random.default_rng(0)
  f = lambda *s: jnp.asarray(rng.standard_normal(s), dtype)
  return dict(x=f(batch, length, heads, head_dim), dt=f(batch, length, heads),
              A=-jnp.asarray(rng.uniform(1, 16, heads), jnp.float32),
              B=f(batch, length, 1, state), C=f(batch, length, 1, state))


def floor_s(batch, length, heads, head_dim, state, chunk, dtype, mode):
  if jax.default_backend() != "gpu":
    return None
  item = jnp.dtype(dtype).itemsize
  seq, bc = batch * length * heads * head_dim * item, batch * length * state * item
  bytes_ = 2 * seq + 2 * bc if mode == "fwd" else 2 * seq + 2 * bc + 4 * seq + 2 * bc
  # Intra-chunk: C B^T (q x q x n) and its product with x (q x q x p), per chunk and head;
  # chunk states and their readout: 2 x (q x p x n).
  per_chunk = 2 * chunk * chunk * (state + head_dim) + 4 * chunk * head_dim * state
  flops = batch * heads * (length / chunk) * per_chunk * (1 if mode == "fwd" else 3)
  return max(bytes_ / HBM_BYTES_PER_S, flops / PEAK_FLOPS)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--small", action="store_true")
  p.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
  p.add_argument("--chunks", default="32,64,128")
  p.add_argument("--reps", type=int, default=5)
  p.add_argument("--out", default="benchmarks/out/ssd.json")
  args = p.parse_args(argv)
  batch, length, heads, head_dim, state = ((4, 64, 4, 16, 16) if args.small
                                           else (128, 257, 12, 64, 64))
  dtype = jnp.dtype(args.dtype)
  x = inputs(batch, length, heads, head_dim, state, dtype)
  w = jnp.asarray(np.random.default_rng(1).standard_normal(x["x"].shape), jnp.float32)
  print(f"# ssd: {jax.devices()[0].device_kind}, jax {jax.__version__}, {dtype.name}, batch "
        f"{batch}, length {length}, heads {heads} x {head_dim}, state {state}", flush=True)
  rows = []
  configs = [("reference", 0)] + [("chunked", int(c)) for c in args.chunks.split(",")]
  for mode in ("fwd", "fwd+bwd"):
    for impl, chunk in configs:
      fwd = lambda v, impl=impl, chunk=chunk: ssd(**v, dt_softplus=True, impl=impl,
                                                  chunk_size=max(chunk, 1))
      fn = (jax.jit(fwd) if mode == "fwd" else
            jax.jit(jax.grad(lambda v, w: jnp.sum(fwd(v).astype(jnp.float32) * w))))
      seconds = time_fn(fn, x, reps=args.reps) if mode == "fwd" else time_fn(fn, x, w,
                                                                              reps=args.reps)
      floor = floor_s(batch, length, heads, head_dim, state, max(chunk, 64), dtype, mode)
      rows.append(dict(mode=mode, impl=impl, chunk=chunk, seconds=seconds, floor_s=floor))
      ratio = f"{seconds / floor:7.1f}x floor" if floor else ""
      print(f"{mode:>8} {impl:>9} chunk {chunk:>4}: {seconds * 1e3:9.3f} ms {ratio}", flush=True)
  write_results(args.out, rows=rows)


if __name__ == "__main__":
  main()
