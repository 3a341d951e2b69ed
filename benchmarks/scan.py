"""Times every selective-scan implementation at the paper's shapes; prints a table, writes JSON.

    python benchmarks/scan.py                   # paper shapes: channels 384, state 16
    python benchmarks/scan.py --small           # a quick run for laptops and `make demo`
    python benchmarks/scan.py --out scan.json --impls xla,pallas --dtype bfloat16

The call is the MambaVision mixer's: D, delta_bias, softplus, no z gate. "fwd" times y;
"fwd+bwd" times jax.grad of sum(y * w) with respect to u, delta, A, B, C, D and delta_bias.
Ratios are to the fastest implementation of the same row: every implementation of a row is
compiled first, then timed in --reps interleaved rounds (medians; a call shorter than 20 ms runs
several times per round, with one sync). On GPU "auto" is "pallas" timed a second time, and the
"A/A" line after each row gives their ratio: the timing's spread. The table also gives
the exp-throughput floor (one exp per (batch, token, channel, state) element forward, two for
forward+backward: the backward recomputes the states) and the HBM floor (every input read once,
every output written once), and the fraction of each that was achieved.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from kernels import selective_scan  # noqa: E402
from kernels.scan import resolve_impl  # noqa: E402

PAPER_SHAPES = [(128, 257), (512, 50)]  # (batch, length): 256 px and 112 px crops
SMALL_SHAPES = [(8, 257), (32, 50)]
EXP_PER_CLOCK_PER_SM = 16   # MUFU.EX2 throughput, compute capability 8.x/9.x (CUDA guide)
BOOST_CLOCK_HZ = 1.98e9     # H100/H200 SXM boost clock
HBM_BYTES_PER_S = 4.3e12    # device-to-device copy measured on the H200 here


def make_inputs(batch, length, channels, state, dtype, seed=0):
  rng = np.random.default_rng(seed)
  f = lambda *s: rng.standard_normal(s).astype(np.float32)
  return dict(
      u=jnp.asarray(f(batch, length, channels), dtype),
      delta=jnp.asarray(0.5 * f(batch, length, channels), dtype),
      A=-jnp.asarray(np.tile(np.arange(1, state + 1, dtype=np.float32), (channels, 1))),
      B=jnp.asarray(f(batch, length, state), dtype),
      C=jnp.asarray(f(batch, length, state), dtype),
      D=jnp.ones((channels,), jnp.float32),
      delta_bias=jnp.asarray(0.1 * f(channels)),
  )


def make_fns(impl):
  """Jitted forward and gradient of one implementation ("peer": jla's Mosaic GPU Mamba-1)."""
  def fwd(x):
    if impl == "peer":
      from jla.ops.mosaic_gpu.mamba1 import mamba1
      return mamba1(x["C"], x["B"], x["u"], x["delta"], x["A"], d=x["D"],
                    dt_bias=x["delta_bias"], dt_softplus=True)[0]
    return selective_scan(x["u"], x["delta"], x["A"], x["B"], x["C"], x["D"],
                          delta_bias=x["delta_bias"], delta_softplus=True, impl=impl)

  def loss(x, w):
    return jnp.sum(fwd(x).astype(jnp.float32) * w)

  return jax.jit(fwd), jax.jit(jax.grad(loss))


def write_results(out: str, **fields) -> dict:
  """{device, backend, jax, python, date, argv, **fields} as JSON at out (written to a temporary
  name, then renamed); returns it."""
  result = dict(device=jax.devices()[0].device_kind, backend=jax.default_backend(),
                jax=jax.__version__, python=platform.python_version(),
                date=time.strftime("%Y-%m-%d"), argv=sys.argv[1:], **fields)
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  with open(out + ".tmp", "w") as f:
    json.dump(result, f, indent=1)
  os.replace(out + ".tmp", out)
  print(f"# wrote {out}")
  return result


def xla_bytes(compiled) -> int | None:
  """XLA's own account of a compiled function's memory: arguments + outputs - donated +
  temporaries (None where the backend gives none)."""
  mem = compiled.memory_analysis()
  return (None if mem is None else mem.argument_size_in_bytes + mem.output_size_in_bytes
          - mem.alias_size_in_bytes + mem.temp_size_in_bytes)


def calls_per_sync(call, min_time=0.02) -> int:
  """How many calls to enqueue between host syncs so that a sync takes at least `min_time`: on
  a GPU a call of a few hundred microseconds timed alone is mostly dispatch and sync latency
  (an A/A pair of identical kernels differed by 30% that way on the H200, RESULTS.md)."""
  t0 = time.perf_counter()
  jax.block_until_ready(call())
  return max(1, min(1000, math.ceil(min_time / max(time.perf_counter() - t0, 1e-6))))


def timed(call, n) -> float:
  """Seconds per call of n calls enqueued back to back, then one sync."""
  t0 = time.perf_counter()
  for _ in range(n):
    out = call()
  jax.block_until_ready(out)
  return (time.perf_counter() - t0) / n


def interleaved_rounds(calls, reps):
  """{name: [seconds per call, one entry per round]} of compiled calls timed in `reps` rounds,
  each name once per round, so that the machine's drift during the run affects every name alike.
  Short calls run several times per round (`calls_per_sync`)."""
  n = {name: calls_per_sync(call) for name, call in calls.items()}
  rounds = {name: [] for name in calls}
  for _ in range(reps):
    for name, call in calls.items():
      rounds[name].append(timed(call, n[name]))
  return rounds


def time_fn(fn, *args, reps, min_time=0.2):
  """Median seconds per call after one compile-and-warm-up call; short calls are timed several
  at a time (`calls_per_sync`)."""
  call = lambda: fn(*args)
  jax.block_until_ready(call())  # compile and warm up
  n = calls_per_sync(call)
  times = []
  while len(times) < reps or sum(times) * n < min_time and len(times) < 100:
    times.append(timed(call, n))
  return statistics.median(times)


def floors(batch, length, channels, state, dtype, mode):
  """(exp floor, HBM floor) in seconds on the default GPU, or (None, None) elsewhere."""
  if jax.default_backend() != "gpu":
    return None, None
  sms = getattr(jax.devices()[0], "core_count", None) or 132
  exps = batch * length * channels * state * (1 if mode == "fwd" else 2)
  item = jnp.dtype(dtype).itemsize
  seq, bc = batch * length * channels * item, batch * length * state * item
  # fwd: read u, delta, B, C; write y. bwd adds: read dy and the same inputs again, write du,
  # ddelta, dB, dC (the chunk-start states are small and ignored).
  bytes_ = 3 * seq + 2 * bc if mode == "fwd" else 3 * seq + 2 * bc + 6 * seq + 4 * bc
  return exps / (sms * EXP_PER_CLOCK_PER_SM * BOOST_CLOCK_HZ), bytes_ / HBM_BYTES_PER_S


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--small", action="store_true", help="small shapes, for a quick CPU run")
  p.add_argument("--impls", default=None,
                 help="comma-separated; default reference,xla,pallas,auto on GPU, "
                      "reference,sequential,xla,auto elsewhere (pallas runs on CPU only in the "
                      "slow interpret mode)")
  p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
  p.add_argument("--channels", type=int, default=384)
  p.add_argument("--state", type=int, default=16)
  p.add_argument("--reps", type=int, default=None, help="rounds (default 15 on GPU, 5 elsewhere)")
  p.add_argument("--modes", default="fwd,fwd+bwd")
  p.add_argument("--out", default="benchmarks/out/scan.json", help="JSON results path")
  args = p.parse_args(argv)

  on_gpu = jax.default_backend() == "gpu"
  reps = args.reps or (15 if on_gpu else 5)
  impls = (args.impls.split(",") if args.impls else
           ["reference", "xla", "pallas", "auto"] if on_gpu else
           ["reference", "sequential", "xla", "auto"])
  if on_gpu and not args.impls and _peer_importable():
    impls.append("peer")
  shapes = SMALL_SHAPES if args.small else PAPER_SHAPES
  dtype = jnp.dtype(args.dtype)
  device = jax.devices()[0]
  print(f"# selective scan benchmark: {device.device_kind} ({jax.default_backend()}), "
        f"jax {jax.__version__}, dtype {dtype.name}, channels {args.channels}, "
        f"state {args.state}; auto -> {resolve_impl('auto')}", flush=True)
  rows = []
  for batch, length in shapes:
    x = make_inputs(batch, length, args.channels, args.state, dtype)
    w = jnp.asarray(np.random.default_rng(1).standard_normal(x["u"].shape), jnp.float32)
    for mode in args.modes.split(","):
      calls = {}
      for impl in impls:
        fwd, grad = make_fns(impl)
        call = (lambda f=fwd: f(x)) if mode == "fwd" else (lambda g=grad: g(x, w))
        try:
          jax.block_until_ready(call())  # compile and warm up
          calls[impl] = call
        except Exception as e:  # keep the table going; the error is part of the record
          print(f"  {impl} {mode} failed: {type(e).__name__}: {str(e)[:300]}", flush=True)
      times = {impl: statistics.median(r)
               for impl, r in interleaved_rounds(calls, reps).items()}
      if not times:
        continue
      best = min(times.values())
      exp_floor, hbm_floor = floors(batch, length, args.channels, args.state, dtype, mode)
      for impl, t in times.items():
        row = dict(batch=batch, length=length, channels=args.channels, state=args.state,
                   dtype=dtype.name, mode=mode, impl=impl, seconds=t, ratio_to_fastest=t / best)
        if exp_floor is not None:
          row.update(exp_floor_s=exp_floor, hbm_floor_s=hbm_floor,
                     frac_exp_floor=exp_floor / t, frac_hbm_floor=hbm_floor / t)
        rows.append(row)
        print(_fmt(row), flush=True)
      auto = resolve_impl("auto")
      if on_gpu and "auto" in times and auto in times:  # one kernel twice: this row's spread
        print(f"# A/A: auto ({auto}) / {auto} = {times['auto'] / times[auto]:.2f}", flush=True)
  targets = check_targets(rows)
  for t in targets:
    print(f"# target {'met   ' if t['met'] else 'MISSED'} {t['target']}: {t['value']:.2f} "
          f"({t['batch']} x {t['length']})")
  return write_results(args.out, rows=rows, targets=targets)


def check_targets(rows):
  """The issue's targets, per shape, from rows measured in this run (absent impls are skipped).

  GPU: pallas fwd within 1.5x of the exp floor; fwd+bwd at least 10x faster than xla; not slower
  than the peer. CPU: auto within 10% of the fastest impl.
  """
  by = {(r["batch"], r["length"], r["mode"], r["impl"]): r for r in rows}
  shapes = sorted({(r["batch"], r["length"]) for r in rows})
  out = []

  def add(target, value, met, shape):
    out.append(dict(target=target, value=value, met=bool(met), batch=shape[0], length=shape[1]))

  for shape in shapes:
    get = lambda mode, impl: by.get((*shape, mode, impl))
    if jax.default_backend() == "gpu":
      if (f := get("fwd", "pallas")) and "exp_floor_s" in f:
        add("pallas fwd / exp floor <= 1.5", f["seconds"] / f["exp_floor_s"],
            f["seconds"] <= 1.5 * f["exp_floor_s"], shape)
      if (p := get("fwd+bwd", "pallas")) and (x := get("fwd+bwd", "xla")):
        add("xla / pallas fwd+bwd >= 10", x["seconds"] / p["seconds"],
            x["seconds"] >= 10 * p["seconds"], shape)
      for mode in ("fwd", "fwd+bwd"):
        if (p := get(mode, "pallas")) and (q := get(mode, "peer")):
          add(f"pallas / peer {mode} <= 1", p["seconds"] / q["seconds"],
              p["seconds"] <= q["seconds"], shape)
    else:
      for mode in ("fwd", "fwd+bwd"):
        if a := get(mode, "auto"):
          add(f"auto / fastest {mode} <= 1.1", a["ratio_to_fastest"],
              a["ratio_to_fastest"] <= 1.1, shape)
  return out


def _peer_importable():
  """The peer kernel (jax-linear-attention, section 6 of the spec), where it is installed."""
  try:
    from jla.ops.mosaic_gpu import mamba1  # noqa: F401
    return True
  except Exception as e:  # ImportError, or an incompatible jax
    print(f"# peer kernel (jla.ops.mosaic_gpu.mamba1) not importable: {e}")
    return False


def _fmt(row):
  s = (f"{row['batch']:>4} x {row['length']:>3} {row['mode']:>7} {row['impl']:>9}: "
       f"{row['seconds'] * 1e3:10.3f} ms  x{row['ratio_to_fastest']:.2f}")
  if "exp_floor_s" in row:
    s += (f"  | exp floor {row['exp_floor_s'] * 1e6:7.1f} us ({row['frac_exp_floor']:.0%})"
          f"  HBM floor {row['hbm_floor_s'] * 1e6:7.1f} us ({row['frac_hbm_floor']:.0%})")
  return s


if __name__ == "__main__":
  main()
