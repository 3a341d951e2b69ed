"""The depthwise conv as shifted multiply-adds: nnx.Conv's parameters and results, against a
float64 numpy oracle and nnx.Conv itself."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mvhybrid_jax.models.depthwise import DepthwiseConv1d


def numpy_depthwise(x, kernel, bias, left, right):
  """y[b, t, c] = sum_i xpad[b, t + i, c] * kernel[i, 0, c] (+ bias[c]), in float64."""
  x, kernel = np.asarray(x, np.float64), np.asarray(kernel, np.float64)
  xp = np.pad(x, ((0, 0), (left, right), (0, 0)))
  k = kernel.shape[0]
  n = xp.shape[1] - k + 1
  y = sum(xp[:, i:i + n] * kernel[i, 0] for i in range(k))
  return y + (np.asarray(bias, np.float64) if bias is not None else 0)


@pytest.mark.parametrize("k,padding,bias", [(4, (1, 2), False), (4, (3, 0), True),
                                            (7, (3, 3), True)])
def test_equals_nnx_conv_and_the_oracle(k, padding, bias):
  channels = 24
  ours = DepthwiseConv1d(channels, k, padding=padding, use_bias=bias, rngs=nnx.Rngs(0))
  conv = nnx.Conv(channels, channels, kernel_size=(k,), feature_group_count=channels,
                  padding=[padding], use_bias=bias, rngs=nnx.Rngs(0))
  rng = np.random.default_rng(k)
  ours.kernel[...] = jnp.asarray(rng.standard_normal(ours.kernel.shape), jnp.float32)
  if bias:
    ours.bias[...] = jnp.asarray(rng.standard_normal(channels), jnp.float32)
  # the same parameter tree as nnx.Conv: checkpoints and the interop's key mapping hold
  shapes = lambda m: jax.tree.map(lambda v: v.shape, nnx.state(m, nnx.Param))
  assert shapes(ours) == shapes(conv)
  nnx.update(conv, nnx.state(ours, nnx.Param))
  x = jnp.asarray(rng.standard_normal((3, 37, channels)), jnp.float32)
  want = numpy_depthwise(x, ours.kernel[...], ours.bias[...] if bias else None, *padding)
  np.testing.assert_allclose(ours(x), want, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(ours(x), conv(x), rtol=1e-5, atol=1e-5)
  # bfloat16: products and sums in float32, one rounding at the end
  half = DepthwiseConv1d(channels, k, padding=padding, use_bias=bias, dtype=jnp.bfloat16,
                         rngs=nnx.Rngs(0))
  nnx.update(half, nnx.state(ours, nnx.Param))
  y = half(x)
  assert y.dtype == jnp.bfloat16
  want16 = numpy_depthwise(np.asarray(x.astype(jnp.bfloat16), np.float64),
                           np.asarray(ours.kernel[...].astype(jnp.bfloat16), np.float64),
                           np.asarray(ours.bias[...].astype(jnp.bfloat16), np.float64)
                           if bias else None, *padding)
  np.testing.assert_allclose(np.asarray(y, np.float64), want16, rtol=1e-2, atol=1e-2)
  assert np.abs(np.asarray(y, np.float64) - want16).max() <= np.abs(want16).max() * 2 ** -8
