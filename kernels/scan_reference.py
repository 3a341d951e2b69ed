"""The readable oracle: the recurrence stepped over time (jax.lax.fori_loop, a scan)."""

import jax
import jax.numpy as jnp


def discretization_step(delta, delta_bias, delta_softplus):
  """d = softplus(delta + delta_bias) or delta + delta_bias, in float32."""
  d = delta.astype(jnp.float32)
  if delta_bias is not None:
    d = d + delta_bias
  return jax.nn.softplus(d) if delta_softplus else d


def output_gate(y, u, D, z):
  """y + D * u, gated by silu(z); all float32, cast to u's dtype."""
  if D is not None:
    y = y + D * u.astype(jnp.float32)
  if z is not None:
    y = y * jax.nn.silu(z.astype(jnp.float32))
  return y.astype(u.dtype)


def even_chunks(length, max_chunk):
  """(n_chunks, chunk): chunks of at most max_chunk steps, as even as possible (197 steps at most
  64: 4 x 50, not 4 x 64 of which 59 past the end)."""
  n_chunks = -(-length // max_chunk)
  return n_chunks, -(-length // n_chunks)


def per_channel(x, channels):
  """(..., groups, state) -> (..., state, channels): channel c reads group c // (C / G)."""
  *lead, groups, state = x.shape
  x = jnp.swapaxes(x, -1, -2)[..., None]  # (..., state, groups, 1)
  return jnp.broadcast_to(x, (*lead, state, groups, channels // groups)).reshape(
      *lead, state, channels)


def by_group(x, groups):
  """(..., channels) -> (..., groups, channels / groups)."""
  return x.reshape(*x.shape[:-1], groups, -1)


def contract_state(c, h):
  """sum_n c[..., g, n] h[..., n, c'] for the channels c' of group g: (..., channels).

  c: (..., groups, state); h: (..., state, channels). An einsum, not jnp.sum over the state
  axis: XLA:CPU compiles that sum of a product into a reduction ~10x slower than this dot at
  batch 1 (1 x 4097 steps: 354 -> 35 ms; benchmarks/RESULTS.md, issue 19).
  """
  y = jnp.einsum("...gn,...ngk->...gk", c.astype(h.dtype), by_group(h, c.shape[-2]),
                 precision="highest")
  return y.reshape(*y.shape[:-2], -1)


def step(A_t, h, x):
  """h_t and y_t from h_{t-1}: (batch, state, channels), A_t = A.T (state, channels)."""
  d_t, u_t, B_t, C_t = x  # (batch, channels) x2, (batch, groups, state) x2
  inc = (d_t * u_t.astype(jnp.float32))[:, None] * per_channel(B_t.astype(jnp.float32),
                                                                h.shape[-1])
  h = jnp.exp(d_t[:, None] * A_t) * h + inc
  return h, contract_state(C_t, h).real


def at(x, t):
  """x[:, t]: step t of a (batch, length, ...) array."""
  return jax.lax.dynamic_index_in_dim(x, t, axis=1, keepdims=False)


def put(x, v, t):
  """x with x[:, t] = v (in place inside a loop)."""
  return jax.lax.dynamic_update_index_in_dim(x, v.astype(x.dtype), t, axis=1)


def stepper(A_t, xs):
  """The fori_loop body that advances (h, y) by step t; xs = (d, u, B, C), (batch, length, ...)."""
  def body(t, carry):
    h, y = carry
    h, y_t = step(A_t, h, tuple(at(x, t) for x in xs))
    return h, put(y, y_t, t)
  return body


def recurrence(d, u, A_t, B, C):
  """The scan over time of `step` from h = 0: d, u (batch, length, channels), d in float32;
  B, C (batch, length, groups, state). Returns y (batch, length, channels) float32 and h_last
  (batch, state, channels).

  Each step reads its inputs at t and writes y_t in place, all in (batch, length, ...) layout:
  moving time first for lax.scan's xs (and y back) cost the MambaVision mixer ~25% more on
  2 CPU cores at 224 px. y_t overwrites d_t, read at step t and never again: y needs no buffer
  of its own (a zero fill and a copy of (batch, length, channels), ~9% of ViM's mixer at 256 px,
  batch 16; benchmarks/RESULTS.md, issue 19).
  """
  h0 = jnp.zeros((d.shape[0], *A_t.shape), jnp.result_type(A_t.dtype, jnp.float32))

  def body(t, carry):
    h, dy = carry  # dy: y before t, d from t on
    h, y_t = step(A_t, h, (at(dy, t), *(at(x, t) for x in (u, B, C))))
    return h, put(dy, y_t, t)

  h_last, y = jax.lax.fori_loop(0, d.shape[1], body, (h0, d.astype(jnp.float32)))
  return y, h_last


def selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
  """B, C: (batch, length, groups, state). Returns y and h_last (batch, channels, state).

  The state is held as (batch, state, channels), channels minor: XLA:CPU vectorises the step's
  exp and its sum over the state along channels then, ~9x faster than with the state minor
  (benchmarks/RESULTS.md, issue 19).
  """
  d = discretization_step(delta, delta_bias, delta_softplus)
  y, h_last = recurrence(d, u, A.T, B, C)
  return output_gate(y, u, D, z), jnp.swapaxes(h_last, 1, 2)
