"""The CPU fast path: scan_reference's sequential scan with a hand-written adjoint.

jax.grad through the reference's lax.scan runs ~20x its forward on XLA:CPU (the transposed
step is many small ops per time step, and its residuals are stacked per step). Here the
backward is the adjoint recurrence, stepped in reverse:

    g_t = C_t dy_t + exp(d_{t+1} A) g_{t+1},   g_{T-1} = C_{T-1} dy_{T-1} + dL/dh_last

(g_t = dL/dh_t), and each step's input gradients are contractions of g_t with its inputs. The
forward for jax.grad keeps h only at the start of every chunk of steps, (n_chunks, batch, state,
channels); the backward recomputes a chunk's states from its start before stepping back through
it, as scan_pallas does on the GPU. Real A only.

Every loop reads its step's inputs at t and writes its outputs at t in the callers'
(batch, length, ...) layout, as scan_reference.recurrence does: no padding to whole chunks and no
time-major copies (forward + backward 0.8-0.9x the time-major version on 2 CPU cores;
benchmarks/RESULTS.md, issue 19). The last chunk may be shorter: its loops run to the length.
"""

import functools

import jax
import jax.numpy as jnp

from kernels.scan_reference import (at, by_group, contract_state, discretization_step,
                                    even_chunks, output_gate, per_channel, put, recurrence, step,
                                    stepper)

MAX_CHUNK = 16  # steps per chunk: the backward holds a chunk's states, memory ~ 1/chunk of all
F32 = jnp.float32


def selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus, max_chunk=MAX_CHUNK):
  """B, C: (batch, length, groups, state), A real. Returns y and h_last (batch, channels, state)."""
  d = discretization_step(delta, delta_bias, delta_softplus)
  y, h_last = _scan(max_chunk, d, u.astype(F32), A.T, B.astype(F32), C.astype(F32))
  return output_gate(y, u, D, z), jnp.swapaxes(h_last, 1, 2)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _scan(max_chunk, d, u, A_t, B, C):
  """The recurrence on discretised float32 inputs; max_chunk is the backward's.

  Returns y (batch, length, channels) and h_last (batch, state, channels).
  """
  return recurrence(d, u, A_t, B, C)


def _scan_fwd(max_chunk, d, u, A_t, B, C):
  batch, length, channels = d.shape
  n_chunks, chunk = even_chunks(length, max_chunk)

  def one_chunk(c, carry):  # saves the state entering chunk c, then steps through it
    h, y, h_starts = carry
    h_starts = jax.lax.dynamic_update_index_in_dim(h_starts, h, c, 0)
    start = c * chunk
    h, y = jax.lax.fori_loop(start, jnp.minimum(start + chunk, length),
                              stepper(A_t, (d, u, B, C)), (h, y))
    return h, y, h_starts

  h0 = jnp.zeros((batch, *A_t.shape), F32)
  carry = (h0, jnp.zeros((batch, length, channels), F32), jnp.zeros((n_chunks, *h0.shape), F32))
  h_last, y, h_starts = jax.lax.fori_loop(0, n_chunks, one_chunk, carry)
  return (y, h_last), (d, u, A_t, B, C, h_starts)


def _scan_bwd(max_chunk, res, cotangents):
  d, u, A_t, B, C, h_starts = res
  g_y, g_last = cotangents
  batch, length, channels = d.shape
  groups = B.shape[-2]
  n_chunks, chunk = even_chunks(length, max_chunk)
  # The C_t dy_t part of dL/dh_t contracted with B_t and with d_t u_t, for all steps at once: a
  # dot product per step inside the loops is a slow small reduction on XLA:CPU (see
  # contract_state). (batch, length, channels) and (batch, length, groups).
  bc_dy = jnp.repeat(jnp.sum(B * C, -1), channels // groups, axis=-1) * g_y
  dy_du = jnp.sum(by_group(g_y * d * u, groups), -1)

  def back_chunk(k, carry):
    c = n_chunks - 1 - k  # chunks last to first
    start = c * chunk
    n = jnp.minimum(start + chunk, length) - start

    def replay(i, carry):  # the chunk's states again, from its saved start: h_prev[i] = h_{t-1}
      h, h_prev, g_C = carry
      t = start + i
      h_prev = jax.lax.dynamic_update_index_in_dim(h_prev, h, i, 0)
      h, _ = step(A_t, h, tuple(at(x, t) for x in (d, u, B, C)))
      # dL/dC_t needs only h_t and dy_t: taken here, where h_t is at hand
      g_Ct = jnp.einsum("bngk,bgk->bgn", by_group(h, groups), by_group(at(g_y, t), groups),
                        precision="highest")
      return h, h_prev, put(g_C, g_Ct, t)

    g, g_A, g_d, g_u, g_B, g_C, h_prev = carry
    _, h_prev, g_C = jax.lax.fori_loop(0, n, replay, (h_starts[c], h_prev, g_C))

    def back_step(j, carry):
      # g: dL/dh_t through h_{t+1}; g_A: sum over later steps of dL/d(d A) * d, per item
      g, g_A, g_d, g_u, g_B = carry
      i = n - 1 - j  # steps last to first
      t = start + i
      d_t, u_t, B_t, C_t, gy_t, bcdy_t, dydu_t = (at(x, t) for x in (d, u, B, C, g_y, bc_dy, dy_du))
      hp = jax.lax.dynamic_index_in_dim(h_prev, i, 0, keepdims=False)
      du = d_t * u_t
      # dL/dh_t = g + C_t dy_t. Its contractions with B_t and d_t u_t are taken apart, on the
      # carried g plus closed forms for the C_t dy_t part, so that no step materialises
      # dL/dh_t itself: one state-sized pass fewer a step (benchmarks/RESULTS.md, issue 19).
      g_next = jnp.exp(d_t[:, None] * A_t) * (g + per_channel(C_t, channels) * gy_t[:, None])
      g_decay = g_next * hp  # dL/d(d_t A)
      g_inc = contract_state(B_t, g) + bcdy_t  # sum_n dL/dh_t B_t = dL/d(d_t u_t)
      # sum_n g_decay A (ones as one group's C: the einsum, not jnp.sum; see contract_state)
      g_dt = contract_state(jnp.ones_like(B_t[:, :1]), g_decay * A_t) + g_inc * u_t
      g_Bt = (jnp.einsum("bngk,bgk->bgn", by_group(g, groups), by_group(du, groups),
                         precision="highest") + C_t * dydu_t[..., None])
      return (g_next, g_A + g_decay * d_t[:, None], put(g_d, g_dt, t), put(g_u, g_inc * d_t, t),
              put(g_B, g_Bt, t))

    out = jax.lax.fori_loop(0, n, back_step, (g, g_A, g_d, g_u, g_B))
    return (*out, g_C, h_prev)

  zeros = lambda x: jnp.zeros(x.shape, F32)
  carry = (g_last, jnp.zeros_like(h_starts[0]), zeros(d), zeros(u), zeros(B),
           zeros(C), jnp.zeros((chunk, *h_starts.shape[1:]), F32))
  _, g_A, g_d, g_u, g_B, g_C, _ = jax.lax.fori_loop(0, n_chunks, back_chunk, carry)
  return g_d, g_u, jnp.sum(g_A, axis=0), g_B, g_C


_scan.defvjp(_scan_fwd, _scan_bwd)
