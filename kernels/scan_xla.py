"""Portable fast path: jax.lax.associative_scan inside fixed-size chunks of time.

Each chunk materialises (batch, chunk, channels, state) float32 at every level of the parallel
scan; chunking bounds that memory for long sequences and jax.checkpoint makes the backward pass
recompute a chunk instead of storing it.
"""

import jax
import jax.numpy as jnp

from kernels.scan_reference import discretization_step, output_gate

CHUNK = 64


def _combine(left, right):
  """Composes two affine maps h -> a * h + b (left applied first)."""
  a_l, b_l = left
  a_r, b_r = right
  return a_l * a_r, a_r * b_l + b_r


def selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk=CHUNK):
  """B, C: (batch, length, groups, state). Returns y and h_last (batch, channels, state)."""
  batch, length, channels = u.shape
  groups, state = B.shape[2], A.shape[1]
  chunk = min(chunk, length)
  n_chunks = -(-length // chunk)
  pad = n_chunks * chunk - length
  d = discretization_step(delta, delta_bias, delta_softplus)
  # Padded steps have d = 0: exp(0 * A) = 1 and no input, so h passes through them unchanged.
  d, u_f, B_f, C_f = (jnp.pad(x.astype(jnp.float32), [(0, 0), (0, pad)] + [(0, 0)] * (x.ndim - 2))
                      for x in (d, u, B, C))
  A_g = A.reshape(groups, channels // groups, state)

  def to_chunks(x):  # (batch, n_chunks * chunk, ...) -> (n_chunks, batch, chunk, ...)
    return jnp.moveaxis(x.reshape(batch, n_chunks, chunk, *x.shape[2:]), 1, 0)

  @jax.checkpoint
  def chunk_step(h, xs):
    d_c, u_c, B_c, C_c = xs  # (batch, chunk, channels) x2, (batch, chunk, groups, state) x2
    d_c = d_c.reshape(batch, chunk, groups, -1, 1)  # (batch, chunk, groups, channels/group, 1)
    u_c = u_c.reshape(batch, chunk, groups, -1, 1)
    a = jnp.exp(d_c * A_g)  # (batch, chunk, groups, channels/group, state)
    b = (d_c * u_c * B_c[:, :, :, None, :]).astype(a.dtype)
    a, b = jax.lax.associative_scan(_combine, (a, b), axis=1)
    hs = a * h[:, None] + b
    y = jnp.einsum("btgcn,btgn->btgc", hs, C_c.astype(hs.dtype)).real
    return hs[:, -1], y.reshape(batch, chunk, channels)

  h0 = jnp.zeros((batch, groups, channels // groups, state),
                 jnp.result_type(A.dtype, jnp.float32))
  h_last, y = jax.lax.scan(chunk_step, h0, tuple(map(to_chunks, (d, u_f, B_f, C_f))))
  y = jnp.moveaxis(y, 0, 1).reshape(batch, n_chunks * chunk, channels)[:, :length]
  return output_gate(y, u, D, z), h_last.reshape(batch, channels, state)
