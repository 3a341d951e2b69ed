"""EinFFT (SiMBA's channel mixer), in MV_Hybrid's mixer blocks (spec section 1)."""

import jax
import jax.numpy as jnp
import numpy as np
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


@jax.custom_vjp
def _mirror(z):
  """z at the negated frequencies of axes 1 and 2, z[:, -k mod m, -j mod blocks]: one gather
  over the flattened frequencies (per-axis flips made a pass over the spectrum each)."""
  batch, m, blocks, c = z.shape
  k, j = np.meshgrid(np.arange(m), np.arange(blocks), indexing="ij")
  index = ((-k % m) * blocks + (-j % blocks)).reshape(-1)
  return jnp.take(z.reshape(batch, m * blocks, c), index, axis=1, mode="clip",
                  unique_indices=True).reshape(z.shape)


# A permutation that is its own inverse is its own transpose: the gradient is the same gather,
# not the scatter-add that autodiff of a gather gives.
_mirror.defvjp(lambda z: (_mirror(z), None), lambda _, g: (_mirror(g),))


def _softshrink(x, lam=SOFTSHRINK):
  return jnp.sign(x) * jax.nn.relu(jnp.abs(x) - lam)


class EinFFT(nnx.Module):
  """x (batch, tokens, dim) -> 2-D FFT over (tokens, blocks) -> two complex block-diagonal layers
  (ReLU between, on real and imaginary parts) -> softshrink -> inverse FFT, real part.

  Weights (2, blocks, d, d) hold [real, imag] with d = dim / blocks, indexed (block, in, out).
  Runs in float32 whatever the compute dtype, as the release does. The transforms run on half
  the channels: the input is real, so two real channels make one complex one and the spectra
  come apart by symmetry; only the inverse's real part is used, so two spectra go back as one.
  XLA:CPU's FFT is the block's slowest part (a prime 197 or 257 tokens, 4097 = 17 x 241 at
  1024 px): 0.91x the EinFFT time at (1, 4097, 384), 0.93x at (16, 197, 384) (issue 19).
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
    d = h.shape[-1]
    e = -(-d // 2)
    even = lambda v: jnp.pad(v, [(0, 0)] * 3 + [(0, 2 * e - d)])  # (b, m, blocks, 2e)
    # The halves a, b of a real input as one complex signal a + ib: half as many transforms.
    z = jnp.fft.fft2(jax.lax.complex(*jnp.split(even(h), 2, -1)), axes=(1, 2), norm="ortho")
    rz = jnp.conj(_mirror(z))
    # FFT(a) = (Z + conj(RZ)) / 2, FFT(b) = (Z - conj(RZ)) / 2i, R: negated frequencies
    z = jnp.concatenate([0.5 * (z + rz), -0.5j * (z - rz)], -1)[..., :d]  # (b, m, blocks, d)
    h = self.spectral(jnp.concatenate([z.real, z.imag], -1))  # (b, m, blocks, 2d)
    s = even(jax.lax.complex(h[..., :d], h[..., d:]))
    # Re(ifft2(S)) = ifft2(H) with H = (S + conj(RS)) / 2 Hermitian; the halves' H_a + i H_b
    # as one complex spectrum, whose inverse is Re(ifft2(S_a)) + i Re(ifft2(S_b)).
    s = 0.5 * (s + jnp.conj(_mirror(s)))
    h = jnp.fft.ifft2(s[..., :e] + 1j * s[..., e:], axes=(1, 2), norm="ortho")
    h = jnp.concatenate([h.real, h.imag], -1)[..., :d]
    return h.reshape(batch, tokens, dim).astype(x.dtype)

  def spectral(self, h: jax.Array) -> jax.Array:
    """What EinFFT does between its transforms, on the spectrum as [real, imag] halves of the
    last axis, (..., blocks, 2 d): two block-diagonal complex layers, ReLU between, softshrink
    (both act on real and imaginary parts alike)."""
    h = jax.nn.relu(_block_linear(h, self.complex_weight_1[...], self.complex_bias_1[...]))
    return _softshrink(_block_linear(h, self.complex_weight_2[...], self.complex_bias_2[...]))
