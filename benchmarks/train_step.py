"""Pretraining step time, images/s, memory and model FLOPs utilisation, per backbone.

    python benchmarks/train_step.py                        # the :smoke configs (tiny), CPU
    python benchmarks/train_step.py --size paper           # the paper's configs (GPU)
    python benchmarks/train_step.py --size paper --backbones mvhybrid --per_device 32
    python benchmarks/train_step.py --size paper --backbones mvhybrid --ibot both   # the gather

One full DINOv2 step (teacher on 2 global crops, student on 2 global + n local crops, iBOT, KoLeo,
AdamW, EMA) from train/step.py, on all devices with the config's mesh and sharding, on random
crops (the data pipeline is benchmarked by benchmarks/augment.py). Memory: XLA's own account of
the step (arguments + outputs - donated + temporaries), and the device's peak where the backend
reports one (cumulative over the backbones run). MFU = XLA's FLOP count of the step / time / the
device's dense bf16 peak (--peak_tflops; known for H100/H200); the Pallas scan's FLOPs are not in
XLA's count, so MV_Hybrid's MFU is a slight underestimate. Step-time ratios to the first backbone
are measured side by side in this run: every backbone is compiled first, then timed in
--rounds interleaved rounds of --steps steps (medians over rounds). --ibot both runs each
backbone twice, with the iBOT heads on the masked patches only (DINOv2's gather, the default)
and on every patch: same loss, and the step time, FLOPs and memory that the gather saves.
"finite check": the time of the step's check that every weight is finite (trainer: never save a
diverged state), run alone on the same state, as a fraction of the step; fused into the step it
costs at most this.
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
from benchmarks.scan import write_results, xla_bytes  # noqa: E402
from configs import pretrain  # noqa: E402
from mvhybrid_jax import models  # noqa: E402
from mvhybrid_jax.data import masking  # noqa: E402
from mvhybrid_jax import sharding  # noqa: E402
from mvhybrid_jax.train import step  # noqa: E402

PEAK_BF16_TFLOPS = {"H100": 989.4, "H200": 989.4}  # dense, SXM


def peak_tflops(device) -> float | None:
  return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in device.device_kind), None)


def random_batch(config, n: int, seed: int = 0) -> dict:
  rng = np.random.default_rng(seed)
  g, l, k = config.crops.global_size, config.crops.local_size, config.crops.n_local
  return {"global_crops": rng.standard_normal((n, 2, g, g, 3), np.float32),
          "local_crops": rng.standard_normal((n, k, l, l, 3), np.float32),
          "masks": masking.batch_masks(rng, 2 * n, (g // 16, g // 16)).reshape(n, 2, -1)}


def _cost(compiled, key):
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float((cost or {}).get(key, 0.0)) or None


def prepare(name: str, size: str, per_device: int, ibot_masked_only: bool = True) -> dict:
  """Builds and compiles one backbone's step; runs it once."""
  config = pretrain.get_config(name + (",smoke" if size == "tiny" else ""))
  config.batch_size = per_device * jax.device_count()
  config.ibot_masked_only = ibot_masked_only
  mesh = sharding.make_mesh(config.mesh.data, config.mesh.fsdp)
  t0 = time.perf_counter()
  graphdef, state, shardings = step.sharded_state(config, mesh)
  jax.block_until_ready(state)
  init_s = time.perf_counter() - t0
  params = models.count_params(nnx.merge(graphdef, state).student.backbone)
  batch_sharding = sharding.batch_sharding(mesh)
  fn = step.make_step(config, graphdef, shardings, batch_sharding)
  batch = sharding.global_batch(random_batch(config, config.batch_size), batch_sharding)
  t0 = time.perf_counter()
  lowered = fn.lower(state, batch)
  lower_s = time.perf_counter() - t0
  compiled = lowered.compile()
  compile_s = time.perf_counter() - t0
  flops = _cost(compiled, "flops")
  t0 = time.perf_counter()
  state, loss, _ = compiled(state, batch)  # warm-up
  jax.block_until_ready(loss)
  # progress: at the paper's size these phases take minutes, and a run cut short shows which
  print(f"# {name} (iBOT on {'masked' if ibot_masked_only else 'all'}): init {init_s:.1f} s, "
        f"trace {lower_s:.1f} s, compile {compile_s - lower_s:.1f} s, first step "
        f"{time.perf_counter() - t0:.1f} s", flush=True)
  def finite(s):
    train = nnx.merge(graphdef, s)
    return step.weights_finite(train.student, train.teacher)

  check = jax.jit(finite)
  jax.block_until_ready(check(state))
  return dict(compiled=compiled, state=state, batch=batch, check=check, loss=loss,
              step_times=[], check_times=[],
              row=dict(name=name, ibot_masked_only=ibot_masked_only, params=params,
                       batch=config.batch_size, crops=config.crops.to_dict(),
                       compile_s=compile_s, xla_bytes=xla_bytes(compiled), flops=flops))


def time_round(run: dict, steps: int) -> None:
  """Times `steps` steps, then the step's finiteness check (no non-finite state is saved) alone
  on the same state: a standalone pass over every student and teacher weight, an upper bound on
  its fused cost."""
  compiled, state, batch = run["compiled"], run["state"], run["batch"]
  t0 = time.perf_counter()
  for _ in range(steps):
    state, loss, _ = compiled(state, batch)
  jax.block_until_ready((state, loss))
  run["step_times"].append((time.perf_counter() - t0) / steps)
  run["state"], run["loss"] = state, loss
  t0 = time.perf_counter()
  for _ in range(steps):
    finite = run["check"](state)
  jax.block_until_ready(finite)
  run["check_times"].append((time.perf_counter() - t0) / steps)


def summary(run: dict) -> dict:
  r = run["row"]
  seconds, check_s = float(np.median(run["step_times"])), float(np.median(run["check_times"]))
  peak = peak_tflops(jax.devices()[0])
  stats = jax.devices()[0].memory_stats() or {}
  return dict(r, step_s=seconds, images_per_s=r["batch"] / seconds, finite_check_s=check_s,
              finite_check_fraction=check_s / seconds, peak_bytes=stats.get("peak_bytes_in_use"),
              mfu=(r["flops"] / seconds / (peak * 1e12 * jax.device_count())
                   if r["flops"] and peak else None), loss=float(run["loss"]))


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--size", default="tiny", choices=["tiny", "paper"])
  p.add_argument("--backbones", default="mvhybrid,vit_12,vit_24")
  p.add_argument("--per_device", type=int, default=None, help="images per device (64 in the paper)")
  p.add_argument("--steps", type=int, default=None, help="steps per timed round")
  p.add_argument("--rounds", type=int, default=None,
                 help="rounds, interleaved over the backbones; times are medians over rounds")
  p.add_argument("--ibot", default="masked", choices=["masked", "all", "both"],
                 help="iBOT heads on the masked patches only (DINOv2, the default), on all "
                      "patches, or both side by side (the saving of DINOv2's gather)")
  p.add_argument("--out", default="benchmarks/out/train_step.json")
  args = p.parse_args(argv)
  per_device = args.per_device or (64 if args.size == "paper" else 4)
  steps = args.steps or 10
  rounds = args.rounds or (1 if args.size == "paper" else 7)
  names = args.backbones.split(",")
  unknown = sorted(set(names) - set(pretrain.BACKBONES))
  if unknown:
    p.error(f"--backbones: unknown {unknown}; expected some of {list(pretrain.BACKBONES)}")
  device = jax.devices()[0]
  print(f"# pretraining step, {args.size} configs, on {jax.device_count()} x {device.device_kind}"
        f", jax {jax.__version__}, {per_device} images per device", flush=True)
  gib = lambda b: f"{b / 2**30:8.2f}" if b else f"{'n/a':>8}"
  variants = {"masked": [True], "all": [False], "both": [True, False]}[args.ibot]
  runs = [prepare(name, args.size, per_device, masked_only)
          for name in names for masked_only in variants]
  for _ in range(rounds):  # interleaved: slow drifts of a shared machine hit every backbone
    for run in runs:
      time_round(run, steps)
  print(f"{'backbone':>9} {'iBOT on':>7} {'params':>11} {'compile s':>9} {'step ms':>9} "
        f"{'img/s':>8} {'ratio':>6} {'xla GiB':>8} {'peak GiB':>8} {'TFLOP':>7} {'MFU':>6} "
        f"{'finite check':>12}", flush=True)
  rows = []
  for run in runs:
    r = summary(run)
    r["ratio"] = r["step_s"] / rows[0]["step_s"] if rows else 1.0
    rows.append(r)
    mfu = f"{r['mfu']:.1%}" if r["mfu"] else "n/a"
    print(f"{r['name']:>9} {'masked' if r['ibot_masked_only'] else 'all':>7} {r['params']:>11,} "
          f"{r['compile_s']:9.1f} {r['step_s'] * 1e3:9.1f} "
          f"{r['images_per_s']:8.1f} {r['ratio']:6.2f} {gib(r['xla_bytes'])} "
          f"{gib(r['peak_bytes'])} {(r['flops'] or 0) / 1e12:7.2f} {mfu:>6} "
          f"{r['finite_check_fraction']:12.2%}", flush=True)
  write_results(args.out, devices=jax.device_count(), size=args.size, rows=rows)


if __name__ == "__main__":
  main()
