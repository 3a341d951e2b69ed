"""EinFFT (SiMBA's channel mixer), in MV_Hybrid's mixer blocks (spec section 1)."""

import jax
import jax.numpy as jnp
from flax import nnx

SOFTSHRINK = 0.01


def _block_linear(x, w, b):
  """Block-diagonal complex x @ w + b with x as [real, imag] halves of its last axis:
  x (..., blocks, 2 d_in); w (2, blocks, d_in, d_out), b (2, blocks, d_out), [real, imag] stacked.

  One real matmul per block, [xr, xi] @ [[wr, wi], [-wi, wr]], is the complex product; XLA:CPU
  ran the whole EinFFT 0.92x the time of complex64 einsums at (16, 197, 384) (issue 19).
  """
  wr, wi = w[0], w[1]
  w = jnp.concatenate([jnp.concatenate([wr, wi], -1), jnp.concatenate([-wi, wr], -1)], -2)
  return (jnp.einsum("...ki,kio->...ko", x, w, precision="highest")
          + jnp.concatenate([b[0], b[1]], -1))


def _softshrink(x, lam=SOFTSHRINK):
  return jnp.sign(x) * jax.nn.relu(jnp.abs(x) - lam)


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
    h = self.spectral(jnp.concatenate([h.real, h.imag], axis=-1))  # (b, m, blocks, 2d)
    d = h.shape[-1] // 2
    h = jnp.fft.ifft2(jax.lax.complex(h[..., :d], h[..., d:]), axes=(1, 2), norm="ortho").real
    return h.reshape(batch, tokens, dim).astype(x.dtype)

  def spectral(self, h: jax.Array) -> jax.Array:
    """What EinFFT does between its transforms, on the spectrum as [real, imag] halves of the
    last axis, (..., blocks, 2 d): two block-diagonal complex layers, ReLU between, softshrink
    (both act on real and imaginary parts alike)."""
    h = jax.nn.relu(_block_linear(h, self.complex_weight_1[...], self.complex_bias_1[...]))
    return _softshrink(_block_linear(h, self.complex_weight_2[...], self.complex_bias_2[...]))
