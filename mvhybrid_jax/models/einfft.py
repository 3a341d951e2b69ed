"""EinFFT (SiMBA's channel mixer), in MV_Hybrid's mixer blocks (spec section 1)."""

import jax
import jax.numpy as jnp
from flax import nnx

SOFTSHRINK = 0.01


def _complex_block_linear(x, w, b):
  """Block-diagonal complex x @ w + b; x complex (..., blocks, d); w, b: [real, imag] stacked."""
  w = jax.lax.complex(w[0], w[1])  # (blocks, d_in, d_out)
  b = jax.lax.complex(b[0], b[1])  # (blocks, d_out)
  return jnp.einsum("...ki,kio->...ko", x, w) + b


def _relu_parts(x):
  return jax.lax.complex(jax.nn.relu(x.real), jax.nn.relu(x.imag))


def _softshrink_parts(x, lam=SOFTSHRINK):
  shrink = lambda v: jnp.sign(v) * jax.nn.relu(jnp.abs(v) - lam)
  return jax.lax.complex(shrink(x.real), shrink(x.imag))


class EinFFT(nnx.Module):
  """x (batch, tokens, dim) -> 2-D FFT over (tokens, blocks) -> two complex block-diagonal layers
  (ReLU between, on real and imaginary parts) -> softshrink -> inverse FFT, real part.

  Weights (2, blocks, d, d) hold [real, imag] with d = dim / blocks, indexed (block, in, out).
  Runs in float32 whatever the compute dtype, as the release does.
  """

  def __init__(self, dim: int, *, num_blocks: int = 4, rngs: nnx.Rngs):
    if dim % num_blocks:
      raise ValueError(f"dim: EinFFT needs dim divisible by num_blocks={num_blocks}, got {dim}")
    d = dim // num_blocks
    self.num_blocks = num_blocks
    normal = lambda *shape: 0.02 * jax.random.normal(rngs.params(), shape, jnp.float32)
    self.complex_weight_1 = nnx.Param(normal(2, num_blocks, d, d))
    self.complex_weight_2 = nnx.Param(normal(2, num_blocks, d, d))
    self.complex_bias_1 = nnx.Param(normal(2, num_blocks, d))
    self.complex_bias_2 = nnx.Param(normal(2, num_blocks, d))

  def __call__(self, x: jax.Array) -> jax.Array:
    batch, tokens, dim = x.shape
    h = x.astype(jnp.float32).reshape(batch, tokens, self.num_blocks, -1)  # (b, m, blocks, d)
    h = jnp.fft.fft2(h, axes=(1, 2), norm="ortho")
    h = _relu_parts(_complex_block_linear(h, self.complex_weight_1[...], self.complex_bias_1[...]))
    h = _complex_block_linear(h, self.complex_weight_2[...], self.complex_bias_2[...])
    h = jnp.fft.ifft2(_softshrink_parts(h), axes=(1, 2), norm="ortho").real
    return h.reshape(batch, tokens, dim).astype(x.dtype)
