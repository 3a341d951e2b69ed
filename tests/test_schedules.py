"""The recipe's schedules, step for step against DINOv2's CosineScheduler (written out in numpy
below from its definition) and against their formulas."""

import math

import numpy as np
import pytest

from mvhybrid_jax import schedules


def dinov2_schedule(base, final, total, warmup=0, start=0.0):
  """DINOv2's CosineScheduler as an array over steps 0..total-1, then `final` beyond."""
  iters = np.arange(total - warmup)
  cos = final + 0.5 * (base - final) * (1 + np.cos(np.pi * iters / max(len(iters), 1)))
  table = np.concatenate([np.linspace(start, base, warmup), cos[:len(iters)]])
  return lambda step: table[step] if step < total else final


def _steps(total):
  return sorted({s for s in (0, 1, 2, 3, total // 3, total // 2, total - 2, total - 1, total,
                                total + 5) if s >= 0})


def test_cosine_matches_dinov2_formula():
  f = schedules.cosine(0.04, 0.4, 1000)
  for step in (0, 1, 250, 500, 999, 1000, 2000):
    t = min(step, 1000)
    want = 0.4 + (0.04 - 0.4) * (1 + math.cos(math.pi * t / 1000)) / 2
    np.testing.assert_allclose(float(f(step)), want, rtol=1e-5)
  m = schedules.cosine(0.992, 1.0, 100)
  assert abs(float(m(0)) - 0.992) < 1e-6 and abs(float(m(100)) - 1.0) < 1e-6


@pytest.mark.parametrize("warmup,total", [(100, 1000), (1, 20), (10, 20), (0, 50)])
def test_learning_rate_matches_dinov2_step_for_step(warmup, total):
  f = schedules.learning_rate(0.002, 1536, warmup_steps=warmup, total_steps=total)
  peak = 0.002 * math.sqrt(1536 / 1024)
  ref = dinov2_schedule(peak, 1e-6, total, warmup, 0.0)
  for step in _steps(total):
    np.testing.assert_allclose(float(f(step)), ref(step), rtol=1e-5, atol=1e-9,
                               err_msg=f"step {step}")
  if warmup > 1:  # the peak is reached at step warmup - 1, and held at warmup
    np.testing.assert_allclose([float(f(warmup - 1)), float(f(warmup))], [peak, peak], rtol=1e-6)


@pytest.mark.parametrize("warmup", [300, 1, 2, 0])
def test_teacher_temperature_matches_dinov2_step_for_step(warmup):
  f = schedules.teacher_temperature(0.04, 0.06, warmup)
  ref = dinov2_schedule(0.06, 0.06, warmup, warmup, 0.04)
  for step in _steps(max(warmup, 1)):
    np.testing.assert_allclose(float(f(step)), ref(step), rtol=1e-6, err_msg=f"step {step}")
  if warmup == 300:
    np.testing.assert_allclose([float(f(s)) for s in (0, 299, 300, 900)],
                               [0.04, 0.06, 0.06, 0.06], rtol=1e-6)
