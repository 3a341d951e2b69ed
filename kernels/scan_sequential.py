"""The CPU fast path: scan_reference's sequential scan with a hand-written adjoint.

jax.grad through the reference's lax.scan runs ~20x its forward on XLA:CPU (the transposed
step is many small ops per time step, and its residuals are stacked per step). Here the
backward is the adjoint recurrence, stepped in reverse:

    g_t = C_t dy_t + exp(d_{t+1} A) g_{t+1},   g_{T-1} = C_{T-1} dy_{T-1} + dL/dh_last

(g_t = dL/dh_t), and each step's input gradients are contractions of g_t with its inputs. The
forward for jax.grad keeps h only at the start of every chunk of steps, (n_chunks, batch, state,
channels); the backward recomputes a chunk's states from its start before stepping back through
it, as scan_pallas does on the GPU. Real A only.
"""

import functools

import jax
import jax.numpy as jnp

from kernels.scan_reference import (by_group, contract_state, discretization_step, output_gate,
                                    per_channel, recurrence, step)

MAX_CHUNK = 16  # steps per chunk: the backward holds a chunk's states, memory ~ 1/chunk of all
F32 = jnp.float32


def selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus, max_chunk=MAX_CHUNK):
  """B, C: (batch, length, groups, state), A real. Returns y and h_last (batch, channels, state)."""
  d = discretization_step(delta, delta_bias, delta_softplus)
  y, h_last = _scan(max_chunk, d, u.astype(F32), A.T, B.astype(F32), C.astype(F32))
  return output_gate(y, u, D, z), jnp.swapaxes(h_last, 1, 2)


def _chunked(max_chunk, x):
  """(batch, length, ...) -> (n_chunks, chunk, batch, ...), chunks as even as possible.

  Padded steps have d = 0: exp(0 * A) = 1 and no input, so h passes through them unchanged.
  """
  batch, length = x.shape[:2]
  n_chunks = -(-length // max_chunk)
  chunk = -(-length // n_chunks)
  x = jnp.pad(x, [(0, 0), (0, n_chunks * chunk - length)] + [(0, 0)] * (x.ndim - 2))
  return jnp.moveaxis(x.reshape(batch, n_chunks, chunk, *x.shape[2:]), 0, 2)


def _unchunked(x, length):
  """(n_chunks, chunk, batch, ...) -> (batch, length, ...), the padding dropped."""
  n_chunks, chunk, batch = x.shape[:3]
  return jnp.moveaxis(x, 2, 0).reshape(batch, n_chunks * chunk, *x.shape[3:])[:, :length]


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _scan(max_chunk, d, u, A_t, B, C):
  """The recurrence on discretised float32 inputs; max_chunk is the backward's.

  Returns y (batch, length, channels) and h_last (batch, state, channels).
  """
  return recurrence(d, u, A_t, B, C)


def _scan_fwd(max_chunk, d, u, A_t, B, C):
  def one_chunk(h, xs_c):
    h_end, y = jax.lax.scan(functools.partial(step, A_t), h, xs_c)
    return h_end, (y, h)

  h0 = jnp.zeros((d.shape[0], *A_t.shape), F32)
  xs = tuple(_chunked(max_chunk, x) for x in (d, u, B, C))
  h_last, (y, h_starts) = jax.lax.scan(one_chunk, h0, xs)
  return (_unchunked(y, d.shape[1]), h_last), (xs, A_t, h_starts)


def _scan_bwd(max_chunk, res, cotangents):
  (d, u, B, C), A_t, h_starts = res  # (n_chunks, chunk, batch, ...)
  g_y, g_last = cotangents  # (batch, length, channels), (batch, state, channels)
  groups = B.shape[-2]

  def back_step(carry, x):
    g, g_A = carry  # dL/dh_t through h_{t+1}; sum over later steps of dL/d(d A) * d, per item
    d_t, u_t, B_t, C_t, gy_t, h_prev = x
    decay = jnp.exp(d_t[:, None] * A_t)  # (batch, state, channels)
    h_t = decay * h_prev + (d_t * u_t)[:, None] * per_channel(B_t, h_prev.shape[-1])
    g = g + per_channel(C_t, gy_t.shape[-1]) * gy_t[:, None]  # dL/dh_t
    g_decay = g * decay * h_prev  # dL/d(d_t A)
    g_inc = contract_state(B_t, g)  # sum_n g B_t = dL/d(d_t u_t), (batch, channels)
    # sum_n g_decay A (ones as one group's C: the einsum, not jnp.sum; see contract_state)
    g_d = contract_state(jnp.ones_like(B_t[:, :1]), g_decay * A_t) + g_inc * u_t
    g_B = jnp.einsum("bngk,bgk->bgn", by_group(g, groups), by_group(d_t * u_t, groups),
                     precision="highest")
    g_C = jnp.einsum("bngk,bgk->bgn", by_group(h_t, groups), by_group(gy_t, groups),
                     precision="highest")
    return (decay * g, g_A + g_decay * d_t[:, None]), (g_d, g_inc * d_t, g_B, g_C)

  def back_chunk(carry, x):
    h_start, xs_c = x
    # The chunk's states again, from its saved start: h_prev[t] = h_{t-1}.
    _, h_prev = jax.lax.scan(lambda h, x_t: (step(A_t, h, x_t)[0], h), h_start, xs_c[:4])
    return jax.lax.scan(back_step, carry, (*xs_c, h_prev), reverse=True)

  xs = (d, u, B, C, _chunked(max_chunk, g_y.astype(F32)))
  carry0 = (g_last.astype(F32), jnp.zeros_like(h_starts[0]))
  (_, g_A), grads = jax.lax.scan(back_chunk, carry0, (h_starts, xs), reverse=True)
  g_d, g_u, g_B, g_C = (_unchunked(g, g_y.shape[1]) for g in grads)
  return g_d, g_u, jnp.sum(g_A, axis=0), g_B, g_C


_scan.defvjp(_scan_fwd, _scan_bwd)
