"""The recipe's schedules against their formulas at chosen steps."""

import math

import numpy as np

from mvhybrid_jax import schedules


def test_cosine_matches_dinov2_formula():
  f = schedules.cosine(0.04, 0.4, 1000)
  for step in (0, 1, 250, 500, 999, 1000, 2000):
    t = min(step, 1000)
    want = 0.4 + (0.04 - 0.4) * (1 + math.cos(math.pi * t / 1000)) / 2
    np.testing.assert_allclose(float(f(step)), want, rtol=1e-5)
  m = schedules.cosine(0.992, 1.0, 100)
  assert abs(float(m(0)) - 0.992) < 1e-6 and abs(float(m(100)) - 1.0) < 1e-6


def test_learning_rate_warmup_cosine_and_sqrt_batch_rule():
  f = schedules.learning_rate(0.002, 1536, warmup_steps=100, total_steps=1000)
  peak = 0.002 * math.sqrt(1536 / 1024)
  np.testing.assert_allclose(float(f(0)), 0.0, atol=1e-12)
  np.testing.assert_allclose(float(f(50)), peak / 2, rtol=1e-5)
  np.testing.assert_allclose(float(f(100)), peak, rtol=1e-5)
  t = (550 - 100) / 900
  np.testing.assert_allclose(float(f(550)), 1e-6 + (peak - 1e-6) * (1 + math.cos(math.pi * t)) / 2,
                             rtol=1e-5)
  np.testing.assert_allclose(float(f(1000)), 1e-6, rtol=1e-4)


def test_teacher_temperature():
  f = schedules.teacher_temperature(0.04, 0.06, 300)
  np.testing.assert_allclose([float(f(s)) for s in (0, 150, 300, 900)],
                             [0.04, 0.05, 0.06, 0.06], rtol=1e-5)
