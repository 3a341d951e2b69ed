"""benchmarks/backbone.py: the EinFFT written with matmuls computes EinFFT."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from benchmarks import backbone
from mvhybrid_jax.models import einfft


def einfft_numpy(module, x):
  """EinFFT in float64 numpy with np.fft (SiMBA's definition, spec section 1)."""
  b, m, dim = x.shape
  k = module.num_blocks
  w1, w2, b1, b2 = (np.asarray(p[...], np.float64) for p in (
      module.complex_weight_1, module.complex_weight_2, module.complex_bias_1,
      module.complex_bias_2))
  c = lambda p: p[0] + 1j * p[1]
  parts = lambda f, z: f(z.real) + 1j * f(z.imag)
  h = np.fft.fft2(x.reshape(b, m, k, -1), axes=(1, 2), norm="ortho")
  h = parts(lambda r: np.maximum(r, 0), np.einsum("bmki,kio->bmko", h, c(w1)) + c(b1))
  h = np.einsum("bmki,kio->bmko", h, c(w2)) + c(b2)
  h = parts(lambda r: np.sign(r) * np.maximum(np.abs(r) - einfft.SOFTSHRINK, 0), h)
  return np.fft.ifft2(h, axes=(1, 2), norm="ortho").real.reshape(b, m, dim)


@pytest.mark.parametrize("tokens", [13, 16])
def test_einfft_as_matmuls_is_einfft(tokens):
  rng = np.random.default_rng(tokens)
  module = einfft.EinFFT(32, num_blocks=4, rngs=nnx.Rngs(0))
  for p in (module.complex_weight_1, module.complex_weight_2):  # weights that matter
    p[...] = jnp.asarray(0.3 * rng.standard_normal(p[...].shape), jnp.float32)
  x = rng.standard_normal((3, tokens, 32))
  want = einfft_numpy(module, x)
  got = np.asarray(backbone.einfft_as_matmuls(module, jnp.asarray(x, jnp.float32)))
  assert np.abs(want).max() > 0.1  # the softshrink left something to compare
  np.testing.assert_allclose(got, want, atol=2e-5 * np.abs(want).max())
  np.testing.assert_allclose(np.asarray(module(jnp.asarray(x, jnp.float32))), want,
                             atol=2e-5 * np.abs(want).max())
