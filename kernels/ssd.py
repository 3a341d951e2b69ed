"""The Mamba-2 state space duality (SSD) scan: a selective scan whose decay is one scalar per head
and step (Dao & Gu, "Transformers are SSMs", 2024). Hydra's mixer runs it forward and backward.

    from kernels import ssd
    y = ssd(x, dt, A, B, C, D=None, dt_bias=None, dt_softplus=False, initial_state=None,
            return_final_state=False, chunk_size=64, impl="auto")

Shapes: x (batch, length, heads, head_dim); dt (batch, length, heads); A (heads,) real (negative
for a decaying state); B, C (batch, length, groups, state) with heads split evenly across groups;
D (heads,) and dt_bias (heads,); initial_state (batch, heads, head_dim, state). Per head h:

    H_t = exp(dt_t A_h) H_{t-1} + dt_t x_t B_t^T        (head_dim, state)
    y_t = H_t C_t + D_h x_t

with dt = softplus(dt + dt_bias) when dt_softplus. Float32 accumulation; y in x's dtype.

impl "reference": lax.scan over time, the oracle. impl "chunked" (what "auto" picks): the
sequence in chunks of at most chunk_size steps; inside a chunk the quadratic, attention-like form
(L o C B^T) (dt x) with L_ij = exp(sum_{j<k<=i} dt_k A), between chunks the linear recurrence on
chunk-end states. Both are differentiable by JAX.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from kernels.scan_reference import even_chunks

IMPLS = ("auto", "reference", "chunked")
UNROLL_CHUNKS = 32  # the inter-chunk recurrence unrolled up to this many chunks


def _check(x, dt, A, B, C, D, dt_bias, initial_state):
  if x.ndim != 4:
    raise ValueError(f"x: expected (batch, length, heads, head_dim), got {x.shape}")
  b, l, h, p = x.shape
  if dt.shape != (b, l, h):
    raise ValueError(f"dt: expected {(b, l, h)}, got {dt.shape}")
  if A.shape != (h,):
    raise ValueError(f"A: expected ({h},), got {A.shape}")
  if B.ndim != 4 or B.shape[:2] != (b, l) or C.shape != B.shape:
    raise ValueError(f"B, C: expected (batch, length, groups, state) = ({b}, {l}, g, n), got "
                     f"{B.shape} and {C.shape}")
  if h % B.shape[2]:
    raise ValueError(f"B, C: {B.shape[2]} groups do not divide {h} heads")
  for name, v in (("D", D), ("dt_bias", dt_bias)):
    if v is not None and v.shape != (h,):
      raise ValueError(f"{name}: expected ({h},), got {v.shape}")
  if initial_state is not None and initial_state.shape != (b, h, p, B.shape[3]):
    raise ValueError(f"initial_state: expected {(b, h, p, B.shape[3])}, got "
                     f"{initial_state.shape}")


def _heads(v, heads):
  """(batch, length, groups, state) -> (batch, length, heads, state)."""
  return jnp.repeat(v, heads // v.shape[2], axis=2)


def _reference(x, dt, A, B, C, h0):
  def step(state, inputs):
    x_t, dt_t, b_t, c_t = inputs  # (b, h, p), (b, h), (b, h, n), (b, h, n)
    decay = jnp.exp(dt_t * A)[..., None, None]
    state = decay * state + (dt_t[..., None] * x_t)[..., None] * b_t[:, :, None, :]
    return state, jnp.einsum("bhpn,bhn->bhp", state, c_t)

  moved = [jnp.moveaxis(v, 1, 0) for v in (x, dt, B, C)]
  final, y = jax.lax.scan(step, h0, moved)
  return jnp.moveaxis(y, 0, 1), final


def _chunked(x, dt, A, B, C, h0, max_chunk):
  """Even chunks of at most max_chunk steps; each group of heads apart, so C B^T is formed once
  per group, not per head."""
  b, l, h, _ = x.shape
  g = B.shape[2]
  n_chunks, chunk = even_chunks(l, max_chunk)
  pad = n_chunks * chunk - l  # dt = 0 past the end: no decay, no input, the final state holds
  if pad:
    x, dt, B, C = (jnp.pad(v, [(0, 0), (0, pad)] + [(0, 0)] * (v.ndim - 2))
                   for v in (x, dt, B, C))
  k = h // g  # heads per group
  outs = [_chunked_group(x[:, :, i * k:(i + 1) * k], dt[:, :, i * k:(i + 1) * k],
                         A[i * k:(i + 1) * k], B[:, :, i], C[:, :, i], h0[:, i * k:(i + 1) * k],
                         chunk) for i in range(g)]
  ys, finals = zip(*outs)  # per group: (b, l, k, p), (b, k, p, n)
  return jnp.concatenate(ys, axis=2)[:, :l], jnp.concatenate(finals, axis=1)


def _chunked_group(x, dt, A, B, C, h0, q):
  """One group's heads: x (b, l, k, p), dt (b, l, k), A (k,), B, C (b, l, n), h0 (b, k, p, n);
  l a multiple of the chunk q.

  Token-major, heads and head_dim merged (m = k * p), so the chunk states and their readout are
  plain batched matmuls over (batch, chunk); only the intra-chunk product runs heads-major.
  At Hydra's (16, 197, 12 x 64, state 64) on 2 CPU cores: 0.64x the time of a per-head
  (b, c, q, h, ...) layout forward, 0.52x forward + backward (benchmarks/RESULTS.md, issue 19).
  """
  b, l, k, p = x.shape
  n, c, m = B.shape[-1], l // q, k * p
  x, dt = x.reshape(b, c, q, m), dt.reshape(b, c, q, k)
  B, C = B.reshape(b, c, q, n), C.reshape(b, c, q, n)
  per_m = lambda v: jnp.repeat(v, p, axis=-1)  # (..., k) -> (..., k * p)
  # The log decay from the chunk start, summed heads-major: (b, c, k, q). Taken token-major and
  # transposed, XLA fused the transposes into the decay matrix's exps (0.91x the mixer without).
  # A matmul with a triangle of ones, not jnp.cumsum: XLA:CPU lowers cumsum to a two-level
  # reduce-window whose last add it fused into each of the 1.9M exps of the decay matrix, twice
  # per element (Hydra block 0.94x; benchmarks/RESULTS.md, issue 19).
  upper = jnp.triu(jnp.ones((q, q), jnp.float32))  # cum_j = sum_{i<=j} v_i
  cum_h = jnp.einsum("bcki,ij->bckj", jnp.swapaxes(dt, 2, 3) * A[:, None], upper,
                     precision="highest")
  cum = jnp.swapaxes(cum_h, 2, 3)  # (b, c, q, k)
  xdt = x * per_m(dt)  # (b, c, q, m)
  seg = cum_h[..., :, None] - cum_h[..., None, :]  # (b, c, k, i, j)
  L = jnp.exp(jnp.where(jnp.tril(jnp.ones((q, q), bool)), seg, -jnp.inf))
  scores = jnp.einsum("bcin,bcjn->bcij", C, B)[:, :, None] * L  # (b, c, k, i, j)
  xdt_h = xdt.reshape(b, c, q, k, p).transpose(0, 1, 3, 2, 4)  # (b, c, k, q, p)
  y_diag = jnp.einsum("bckij,bckjp->bckip", scores, xdt_h)
  y_diag = y_diag.transpose(0, 1, 3, 2, 4).reshape(b, c, q, m)
  to_end = per_m(jnp.exp(cum[:, :, -1:] - cum))  # (b, c, q, m)
  states = jnp.einsum("bcqn,bcqm->bcnm", B, xdt * to_end)  # each chunk's own input

  def carry(state, inputs):
    chunk_state, chunk_decay = inputs  # (b, n, m), (b, 1, m)
    return chunk_decay * state + chunk_state, state  # emit the state entering

  decay = per_m(jnp.exp(cum[:, :, -1]))[:, :, None]  # (b, c, 1, m)
  state0 = h0.transpose(0, 3, 1, 2).reshape(b, n, m)  # (b, k, p, n) -> (b, n, m)
  # Unrolled up to UNROLL_CHUNKS: as a loop, XLA:CPU zero-filled and twice copied the stacked
  # (c, b, n, m) output, 12.6 MB at Hydra's 16 x 197 (block 0.91x unrolled, 0.97x at 17 chunks;
  # 65 unrolled chunks at 1024 px were 1.03x slower; benchmarks/RESULTS.md, issue 19).
  final, entering = jax.lax.scan(carry, state0, (jnp.moveaxis(states, 1, 0),
                                                 jnp.moveaxis(decay, 1, 0)),
                                 unroll=c <= UNROLL_CHUNKS)
  entering = jnp.moveaxis(entering, 0, 1)  # (b, c, n, m)
  y_off = jnp.einsum("bcqn,bcnm->bcqm", C, entering) * per_m(jnp.exp(cum))
  y = (y_diag + y_off).reshape(b, l, k, p)
  return y, final.reshape(b, n, k, p).transpose(0, 2, 3, 1)


def ssd(x, dt, A, B, C, D=None, dt_bias=None, dt_softplus: bool = False, initial_state=None,
        return_final_state: bool = False, chunk_size: int = 64, impl: str = "auto"):
  """y (batch, length, heads, head_dim), and the final state if return_final_state."""
  if impl not in IMPLS:
    raise ValueError(f"impl: expected one of {IMPLS}, got {impl!r}")
  if chunk_size < 1:
    raise ValueError(f"chunk_size: expected a positive int, got {chunk_size}")
  _check(x, dt, A, B, C, D, dt_bias, initial_state)
  f32 = lambda v: None if v is None else jnp.asarray(v, jnp.float32)
  xf, dtf, Af, Bf, Cf = (f32(v) for v in (x, dt, A, B, C))
  if dt_bias is not None:
    dtf = dtf + f32(dt_bias)
  if dt_softplus:
    dtf = jax.nn.softplus(dtf)
  heads, p, n = x.shape[2], x.shape[3], B.shape[3]
  h0 = (jnp.zeros((x.shape[0], heads, p, n), jnp.float32) if initial_state is None
        else f32(initial_state))
  if impl == "reference":
    y, final = _reference(xf, dtf, Af, _heads(Bf, heads), _heads(Cf, heads), h0)
  else:
    y, final = _chunked(xf, dtf, Af, Bf, Cf, h0, chunk_size)
  if D is not None:
    y = y + f32(D)[:, None] * xf
  y = y.astype(x.dtype)
  return (y, final) if return_final_state else y
