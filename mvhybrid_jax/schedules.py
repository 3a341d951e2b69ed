"""The DINOv2 recipe's schedules (spec section 3), by step, built on optax's.

    lr: linear warmup from 0, then cosine to final_lr; peak = base_lr * sqrt(global_batch / 1024)
    weight decay: cosine 0.04 -> 0.4; teacher momentum: cosine 0.992 -> 1
    teacher temperature: linear 0.04 -> 0.06 over its warmup, then constant
"""

import math

import optax


def cosine(base: float, final: float, steps: int) -> optax.Schedule:
  """final + (base - final) * (1 + cos(pi * step / steps)) / 2, then final (DINOv2's
  CosineScheduler without warmup)."""
  return optax.cosine_decay_schedule(init_value=base, decay_steps=steps, alpha=final / base)


def learning_rate(base_lr: float, global_batch: int, warmup_steps: int, total_steps: int,
                  final_lr: float = 1e-6) -> optax.Schedule:
  peak = base_lr * math.sqrt(global_batch / 1024)
  return optax.warmup_cosine_decay_schedule(init_value=0.0, peak_value=peak,
                                            warmup_steps=warmup_steps, decay_steps=total_steps,
                                            end_value=final_lr)


def teacher_temperature(start: float, end: float, warmup_steps: int) -> optax.Schedule:
  return optax.linear_schedule(start, end, warmup_steps)
