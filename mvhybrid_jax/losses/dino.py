"""DINO's cross-view loss on the CLS token (DINOv2's DINOLoss and its term counting)."""

import jax
import jax.numpy as jnp


def cross_entropy(student_logits: jax.Array, teacher_probs: jax.Array, student_temp: float):
  """Mean over samples of -sum_k t_k log softmax(s / temp)_k."""
  lsm = jax.nn.log_softmax(student_logits.astype(jnp.float32) / student_temp, axis=-1)
  return -jnp.mean(jnp.sum(teacher_probs * lsm, axis=-1))


def dino_loss(student_global, student_local, teacher_global, *, student_temp: float = 0.1):
  """The DINO loss of a multi-crop batch, normalised by its number of crop pairs.

  student_global (n_global, B, K), student_local (n_local, B, K): student head logits;
  teacher_global (n_global, B, K): centred teacher probabilities. Every local crop is compared
  with every teacher global crop; each student global crop with the teacher's *other* global
  crops. The sum is divided by n_global * (n_global - 1) + n_local * n_global, the number of
  pairs, as in DINOv2.
  """
  n_global, n_local = student_global.shape[0], student_local.shape[0]
  total = 0.0
  for t in range(n_global):
    for s in range(n_local):
      total += cross_entropy(student_local[s], teacher_global[t], student_temp)
    for s in range(n_global):
      if s != t:
        total += cross_entropy(student_global[s], teacher_global[t], student_temp)
  return total / (n_global * (n_global - 1) + n_local * n_global)
