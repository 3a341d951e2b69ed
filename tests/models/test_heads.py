"""DINOHead against a numpy forward pass."""

import jax.numpy as jnp
import numpy as np
from flax import nnx

from mvhybrid_jax.models.heads import DINOHead


def test_dino_head_matches_numpy():
  head = DINOHead(16, 40, hidden=32, bottleneck=8, rngs=nnx.Rngs(0))
  head.weight_g[...] = jnp.asarray(np.random.default_rng(1).uniform(0.5, 2.0, 40), jnp.float32)
  x = np.random.default_rng(0).standard_normal((5, 16))
  h = x
  gelu = lambda v: 0.5 * v * (1 + np.vectorize(__import__("math").erf)(v / np.sqrt(2)))
  for i, layer in enumerate(head.mlp):
    h = h @ np.asarray(layer.kernel[...], np.float64) + np.asarray(layer.bias[...], np.float64)
    if i < 2:
      h = gelu(h)
  h /= np.linalg.norm(h, axis=-1, keepdims=True)
  v = np.asarray(head.weight_v[...], np.float64)
  w = v / np.linalg.norm(v, axis=0, keepdims=True) * np.asarray(head.weight_g[...])
  np.testing.assert_allclose(np.asarray(head(jnp.asarray(x, jnp.float32))), h @ w, rtol=2e-4,
                             atol=1e-5)


def test_prototypes_are_unit_vectors_at_init():
  head = DINOHead(16, 64, hidden=32, bottleneck=8, rngs=nnx.Rngs(0))
  out = np.asarray(head(jnp.asarray(np.random.default_rng(0).standard_normal((7, 16)),
                                    jnp.float32)))
  assert out.shape == (7, 64) and np.abs(out).max() <= 1 + 1e-5  # cosines
