"""Checks impl="pallas" against impl="reference" at the paper's shapes, forward and gradients.

    python benchmarks/scan_check.py --out check.json            # exits 1 on any mismatch
    python benchmarks/scan_check.py --small                      # CPU (interpret mode) smoke run
    python benchmarks/scan_check.py --tune --out tune.json       # also time kernel configurations

Run by benchmarks/gpu_check.sh on a GPU. Errors are max |pallas - reference| / max |reference|
per output, on random inputs, with the reference in float32 (lax.scan, float32 accumulation).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.scan import interleaved_rounds, make_inputs  # noqa: E402
from kernels import scan_pallas, selective_scan  # noqa: E402

ARGS = ("u", "delta", "A", "B", "C", "D", "delta_bias", "z")
TOL = {"float32": 2e-4, "bfloat16": 2e-2}


def rel_err(a, b):
  a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
  return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def check(batch, length, channels, state, dtype, with_z):
  x = make_inputs(batch, length, channels, state, dtype, seed=batch + length)
  rng = np.random.default_rng(7)
  x["A"] = -jnp.asarray(np.exp(rng.uniform(-1, 2.8, (channels, state))), jnp.float32)
  x["z"] = jnp.asarray(rng.standard_normal(x["u"].shape), dtype) if with_z else None
  w = jnp.asarray(rng.standard_normal(x["u"].shape), jnp.float32)
  wh = jnp.asarray(rng.standard_normal((batch, channels, state)), jnp.float32)
  names = [k for k in ARGS if x[k] is not None]

  def run(impl):
    def loss(*args):
      kw = dict(zip(names, args))
      y, h = selective_scan(kw["u"], kw["delta"], kw["A"], kw["B"], kw["C"], kw["D"],
                            z=kw.get("z"), delta_bias=kw["delta_bias"], delta_softplus=True,
                            return_last_state=True, impl=impl)
      return jnp.sum(y.astype(jnp.float32) * w) + jnp.sum(h * wh), (y, h)
    (_, (y, h)), grads = jax.jit(jax.value_and_grad(loss, argnums=tuple(range(len(names))),
                                                    has_aux=True))(*[x[k] for k in names])
    return dict(y=y, h_last=h, **{f"d{k}": g for k, g in zip(names, grads)})

  got, want = run("pallas"), run("reference")
  errs = {k: rel_err(got[k], want[k]) for k in want}
  tol = TOL[jnp.dtype(dtype).name]
  ok = all(e <= tol for e in errs.values())
  return dict(batch=batch, length=length, channels=channels, state=state,
              dtype=jnp.dtype(dtype).name, z=with_z, tol=tol, ok=ok, errors=errs)


def tune(batch, length, channels, state, dtype, reps=15):
  """Times kernel configurations (GPU only), each checked against the reference first: all are
  compiled, then timed in interleaved rounds (medians), so that drift affects all alike."""
  x = make_inputs(batch, length, channels, state, dtype)
  w = jnp.asarray(np.random.default_rng(1).standard_normal(x["u"].shape), jnp.float32)
  B, C = x["B"][:, :, None], x["C"][:, :, None]
  want = np.asarray(jax.jit(lambda x: selective_scan(
      x["u"], x["delta"], x["A"], x["B"], x["C"], x["D"], delta_bias=x["delta_bias"],
      delta_softplus=True, impl="reference"))(x))
  configs, calls = [], {}

  def add(mode, **kw):
    def fwd(x):
      return scan_pallas.selective_scan(x["u"], x["delta"], x["A"], B, C, x["D"], None,
                                        x["delta_bias"], True, **kw)[0]
    f = jax.jit(fwd) if mode == "fwd" else jax.jit(jax.grad(
        lambda x, w: jnp.sum(fwd(x).astype(jnp.float32) * w)))
    call = (lambda: f(x)) if mode == "fwd" else (lambda: f(x, w))
    try:
      err = rel_err(jax.jit(fwd)(x), want)
      jax.block_until_ready(call())  # compile and warm up
    except Exception as e:
      print(f"  {mode} {kw}: failed {type(e).__name__}: {str(e)[:300]}", flush=True)
      return
    calls[len(configs)] = call
    configs.append(dict(mode=mode, error=err, batch=batch, length=length, **kw))

  # One warp per program keeps the state reductions in-thread (benchmarks/RESULTS.md); two
  # warps are timed at one setting only.
  for prefetch, block, chunk in itertools.product((False, True), (32, 64, 128), (2, 4, 8)):
    add("fwd", fwd_block=block, fwd_chunk=chunk, bwd_chunk=2, fwd_prefetch=prefetch)
  add("fwd", fwd_block=32, fwd_chunk=4, bwd_chunk=2, fwd_warps=2)
  add("fwd", mufu=False)  # the defaults with libdevice's exact log2 and division
  for prefetch, block, chunk in itertools.product((False, True), (32, 64), (2, 4)):
    add("fwd+bwd", bwd_block=block, fwd_chunk=4, bwd_chunk=chunk, bwd_prefetch=prefetch)
  add("fwd+bwd", bwd_block=64, fwd_chunk=8, bwd_chunk=2)
  add("fwd+bwd", bwd_block=32, fwd_chunk=4, bwd_chunk=4, bwd_warps=2)
  add("fwd+bwd", mufu=False)
  rounds = interleaved_rounds(calls, reps)
  for i, row in enumerate(configs):
    row["seconds"] = statistics.median(rounds[i])
    kw = {k: v for k, v in row.items()
          if k not in ("mode", "error", "batch", "length", "seconds")}
    print(f"  {row['mode']:7} {kw}: {row['seconds'] * 1e6:9.1f} us  err {row['error']:.1e}",
          flush=True)
  return configs


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--small", action="store_true")
  p.add_argument("--tune", action="store_true")
  p.add_argument("--out", default="benchmarks/out/scan_check.json")
  args = p.parse_args(argv)
  print(f"# pallas vs reference on {jax.devices()[0].device_kind}, jax {jax.__version__}",
        flush=True)
  cases = ([(2, 50, 48, 16, jnp.float32, True), (2, 37, 64, 8, jnp.bfloat16, False)]
           if args.small else
           [(128, 257, 384, 16, jnp.float32, False), (512, 50, 384, 16, jnp.float32, False),
            (128, 257, 384, 16, jnp.bfloat16, False), (16, 257, 384, 16, jnp.float32, True)])
  results = []
  for case in cases:
    t0 = time.perf_counter()
    r = check(*case)
    results.append(r)
    worst = max(r["errors"], key=r["errors"].get)
    print(f"{'OK  ' if r['ok'] else 'FAIL'} {r['batch']}x{r['length']}x{r['channels']} "
          f"N={r['state']} {r['dtype']} z={r['z']}: worst {worst} {r['errors'][worst]:.2e} "
          f"(tol {r['tol']:.0e}) [{time.perf_counter() - t0:.1f} s]", flush=True)
  tuning = tune(128, 257, 384, 16, jnp.float32) if args.tune else []
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out + ".tmp", "w") as f:
    json.dump(dict(device=jax.devices()[0].device_kind, jax=jax.__version__, checks=results,
                   tuning=tuning), f, indent=1)
  os.replace(args.out + ".tmp", args.out)
  return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
  sys.exit(main())
