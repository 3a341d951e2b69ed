"""The DINOv2 recipe's schedules (spec section 3), by step, built on optax's.

    lr: linear warmup from 0, then cosine to final_lr; peak = base_lr * sqrt(global_batch / 1024)
    weight decay: cosine 0.04 -> 0.4; teacher momentum: cosine 0.992 -> 1
    teacher temperature: linear 0.04 -> 0.06 over its warmup, then constant

Step for step as DINOv2's CosineScheduler: a warmup of W steps is np.linspace(start, base, W), so
it reaches its peak at step W - 1 (not W, as optax's warmup schedules do), and the cosine that
follows starts again from the peak at step W.
"""

import math

import optax


def cosine(base: float, final: float, steps: int) -> optax.Schedule:
  """final + (base - final) * (1 + cos(pi * step / steps)) / 2, then final (DINOv2's
  CosineScheduler without warmup)."""
  return optax.cosine_decay_schedule(init_value=base, decay_steps=steps, alpha=final / base)


def _warmup(start: float, peak: float, steps: int) -> optax.Schedule:
  """np.linspace(start, peak, steps)[step]: peak at step - 1 (steps = 1: start)."""
  return optax.linear_schedule(start, peak, max(steps - 1, 0))


def learning_rate(base_lr: float, global_batch: int, warmup_steps: int, total_steps: int,
                  final_lr: float = 1e-6) -> optax.Schedule:
  peak = base_lr * math.sqrt(global_batch / 1024)
  decay = cosine(peak, final_lr, total_steps - warmup_steps)
  if not warmup_steps:
    return decay
  return optax.join_schedules([_warmup(0.0, peak, warmup_steps), decay], [warmup_steps])


def teacher_temperature(start: float, end: float, warmup_steps: int) -> optax.Schedule:
  if not warmup_steps:
    return optax.constant_schedule(end)
  return optax.join_schedules([_warmup(start, end, warmup_steps), optax.constant_schedule(end)],
                              [warmup_steps])
