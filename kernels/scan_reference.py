"""The readable oracle: the recurrence stepped over time with jax.lax.scan."""

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


def selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
  """B, C: (batch, length, groups, state). Returns y and h_last (batch, channels, state).

  The state is held as (batch, state, channels), channels minor: XLA:CPU vectorises the step's
  exp and its sum over the state along channels then, ~9x faster than with the state minor
  (benchmarks/RESULTS.md, issue 19).
  """
  batch, length, channels = u.shape
  groups, state = B.shape[2], A.shape[1]
  d = discretization_step(delta, delta_bias, delta_softplus)
  A_t = A.T  # (state, channels)

  def per_channel(x):  # (batch, groups, state) -> (batch, state, channels)
    x = jnp.swapaxes(x.astype(jnp.float32), 1, 2)[..., None]  # (batch, state, groups, 1)
    return jnp.broadcast_to(x, (batch, state, groups, channels // groups)).reshape(
        batch, state, channels)

  def step(h, xs):
    d_t, u_t, B_t, C_t = xs  # (batch, channels) x2, (batch, groups, state) x2
    d_t = d_t[:, None, :]  # (batch, 1, channels)
    u_t = u_t.astype(jnp.float32)[:, None, :]
    h = jnp.exp(d_t * A_t) * h + d_t * u_t * per_channel(B_t)
    y = jnp.sum(per_channel(C_t) * h, axis=1).real  # (batch, channels)
    return h, y

  h0 = jnp.zeros((batch, state, channels), jnp.result_type(A.dtype, jnp.float32))
  xs = tuple(jnp.moveaxis(x, 1, 0) for x in (d, u, B, C))  # time first
  h_last, y = jax.lax.scan(step, h0, xs)
  y = jnp.moveaxis(y, 0, 1)  # (batch, length, channels)
  return output_gate(y, u, D, z), jnp.swapaxes(h_last, 1, 2)
