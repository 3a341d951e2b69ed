"""KoLeo (Kozachenko-Leonenko) regulariser: spreads the CLS features of a batch apart."""

import jax
import jax.numpy as jnp

EPS = 1e-8


def _koleo(x: jax.Array) -> jax.Array:
  x = x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), EPS)
  dots = x @ x.T
  dots = jnp.where(jnp.eye(x.shape[0], dtype=bool), -2.0, dots)  # never yourself
  nn = jnp.argmax(dots, axis=-1)
  dist = jnp.linalg.norm(x - x[nn] + EPS, axis=-1)  # torch's PairwiseDistance adds eps
  return -jnp.mean(jnp.log(dist + EPS))


def koleo_loss(features: jax.Array, groups: int = 1) -> jax.Array:
  """-mean_i log(||x_i - x_nn(i)|| + eps) over L2-normalised features (samples, dim), nn(i)
  the nearest other sample within i's group, averaged over `groups` equal consecutive groups.

  DINOv2 computes KoLeo on each device's local batch (it is not all-gathered) and averages the
  gradients over devices: on a batch sharded over n devices that is groups = n, the rows of one
  group being one device's. groups = 1 searches the whole (global) batch.
  """
  n, dim = features.shape
  if n % groups:
    raise ValueError(f"koleo groups: {groups} does not divide the {n} samples")
  x = features.astype(jnp.float32).reshape(groups, n // groups, dim)  # (groups, local, dim)
  return jnp.mean(jax.vmap(_koleo)(x))
