"""KoLeo (Kozachenko-Leonenko) regulariser: spreads the CLS features of a batch apart."""

import jax
import jax.numpy as jnp

EPS = 1e-8


def koleo_loss(features: jax.Array) -> jax.Array:
  """-mean_i log(||x_i - x_nn(i)|| + eps) over L2-normalised features (samples, dim), nn(i)
  the nearest other sample. Computed per device batch in DINOv2 (it is not all-gathered)."""
  x = features.astype(jnp.float32)
  x = x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), EPS)
  dots = x @ x.T
  dots = jnp.where(jnp.eye(x.shape[0], dtype=bool), -2.0, dots)  # never yourself
  nn = jnp.argmax(dots, axis=-1)
  dist = jnp.linalg.norm(x - x[nn] + EPS, axis=-1)  # torch's PairwiseDistance adds eps
  return -jnp.mean(jnp.log(dist + EPS))
