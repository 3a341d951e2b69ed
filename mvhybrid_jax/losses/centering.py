"""Teacher centring: Sinkhorn-Knopp (DINOv2's default) or softmax with a running centre (DINO)."""

import jax
import jax.numpy as jnp


def sinkhorn_knopp(teacher_logits: jax.Array, temp: float, n_iters: int = 3,
                   weights: jax.Array | None = None) -> jax.Array:
  """Teacher targets (samples, prototypes) whose prototype marginals are uniform.

  Alternately normalises Q = exp(logits / temp) over samples (each prototype gets mass
  1/prototypes) and over prototypes (each sample 1/samples), n_iters times, then rescales so each
  row sums to 1. Under jit on a sharded batch the sums over samples are global, i.e. reduced
  across every device and host, as DINOv2's all-reduce does. weights (samples,) in {0, 1}
  excludes padded rows (iBOT's masked-patch buffers): they get no mass and count for nothing.
  """
  logits = teacher_logits.astype(jnp.float32) / temp
  logits = logits - jnp.max(logits)  # exp-safe; a constant shift cancels in the normalisation
  q = jnp.exp(logits).T  # (prototypes, samples)
  if weights is not None:
    q = q * weights[None, :]
  n_samples = q.shape[1] if weights is None else jnp.sum(weights)
  n_protos = q.shape[0]
  q = q / jnp.sum(q)
  for _ in range(n_iters):
    q = q / jnp.sum(q, axis=1, keepdims=True) / n_protos
    col = jnp.sum(q, axis=0, keepdims=True)
    q = jnp.where(col > 0, q / jnp.where(col > 0, col, 1.0), 0.0) / n_samples
  return (q * n_samples).T


def softmax_center(teacher_logits: jax.Array, center: jax.Array, temp: float) -> jax.Array:
  """DINO's centring: softmax((logits - center) / temp)."""
  return jax.nn.softmax((teacher_logits.astype(jnp.float32) - center) / temp, axis=-1)


def update_center(center: jax.Array, teacher_logits: jax.Array, momentum: float = 0.9,
                  weights: jax.Array | None = None):
  """EMA of the batch mean of the teacher logits (global under a sharded jit); weights (samples,)
  in {0, 1} leaves padded rows out of the mean."""
  logits = teacher_logits.astype(jnp.float32)
  if weights is None:
    mean = jnp.mean(logits, axis=0)
  else:
    mean = jnp.sum(logits * weights[:, None], axis=0) / jnp.maximum(jnp.sum(weights), 1.0)
  return center * momentum + mean * (1 - momentum)
