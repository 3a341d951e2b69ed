"""The selective scan of Mamba, channel-last, with three interchangeable implementations.

    d_t = softplus(delta_t + delta_bias)      (or delta_t + delta_bias)
    h_t = exp(d_t * A) * h_{t-1} + d_t * B_t * u_t,   h_{-1} = 0
    y_t = sum_n C_t[n] * h_t[n] + D * u_t,  then y_t *= silu(z_t) if z is given

This is mamba_ssm's selective_scan_fn with (batch, length, channels) in place of its
(batch, channels, length). Every implementation accumulates in float32 and returns y in u's dtype.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from kernels import scan_pallas, scan_reference, scan_sequential, scan_xla

IMPLS = ("reference", "sequential", "xla", "pallas", "auto")


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                   delta_softplus=False, return_last_state=False, impl="auto"):
  """Runs the selective scan; see the module docstring for the recurrence.

  Args:
    u, delta, z: (batch, length, channels).
    A: (channels, state) float32; complex64 with impl "reference", "xla" or "auto" (which then
      takes "xla" where it would take "pallas" and "reference" where it would take
      "sequential").
    B, C: (batch, length, state) or (batch, length, groups, state); channel c uses group
      c // (channels // groups).
    D, delta_bias: (channels,) float32, optional.
    delta_softplus: apply softplus to delta + delta_bias.
    return_last_state: also return h at the last step, (batch, channels, state) float32.
    impl: "reference" (lax.scan, the oracle), "sequential" (the same scan with a hand-written
      backward), "xla" (chunked associative scan), "pallas" (fused kernel) or "auto" (see
      `resolve_impl`).

  Returns:
    y (batch, length, channels) in u's dtype, or (y, h_last) if return_last_state.
  """
  resolved = resolve_impl(impl)
  B, C = _check_args(u, delta, A, B, C, D, z, delta_bias)
  if jnp.iscomplexobj(A) and impl == "auto":  # the real-valued kernels' complex-capable peers
    resolved = {"pallas": "xla", "sequential": "reference"}.get(resolved, resolved)
  if resolved in ("pallas", "sequential") and jnp.iscomplexobj(A):
    raise ValueError(f"A: complex dtype {A.dtype} needs impl='reference' or impl='xla'; "
                     f"the {resolved} scan is real-valued (float32 A of shape (channels, state)).")
  fn = {"reference": scan_reference.selective_scan,
        "sequential": scan_sequential.selective_scan,
        "xla": scan_xla.selective_scan,
        "pallas": scan_pallas.selective_scan}[resolved]
  if impl == "auto" and resolved in ("reference", "sequential"):
    batch, _, channels = u.shape
    fn = _over_batch_tiles(fn, _cache_batch_tile(batch, channels, A.shape[1]))
  y, h_last = fn(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
  return (y, h_last) if return_last_state else y


@functools.cache
def resolve_impl(impl: str = "auto") -> str:
  """Maps "auto" to a concrete implementation for the default backend.

  GPU: the Pallas kernel (Triton backend, compiles on CUDA sm_80+ and ROCm). Elsewhere
  "sequential" (the reference's forward, a hand-written backward), which `selective_scan` then
  runs over batch tiles whose state fits in cache (`_cache_batch_tile`). Measured on 2 CPU cores
  at the paper's shapes (benchmarks/scan.py, figures in benchmarks/RESULTS.md): the associative
  scan does ~log2(chunk) times the work of the sequential one, which only pays with many cores;
  the sequential scan slows once the (batch, state, channels) state outgrows the cache, hence
  the tiles; its backward is 2-6x faster than jax.grad of the reference.
  """
  if impl not in IMPLS:
    raise ValueError(f"impl: expected one of {IMPLS}, got {impl!r}")
  if impl != "auto":
    return impl
  if jax.default_backend() == "gpu" and scan_pallas.gpu_supported():
    return "pallas"
  return "sequential"


CACHE_STATE_BYTES = 4 << 20


def _cache_batch_tile(batch, channels, state):
  """The largest divisor of batch whose float32 state is at most CACHE_STATE_BYTES.

  4 MiB: on 2 CPU cores, 128 x 384 x 16 (3 MiB) untiled was about as fast as any tiling at
  length 257, and tiles beat the untiled scan by ~25% at batch 512 (benchmarks/RESULTS.md, the
  channels-minor scan).
  """
  per_item = channels * state * 4
  return max([t for t in range(1, batch + 1)
              if batch % t == 0 and t * per_item <= CACHE_STATE_BYTES] or [1])


def _over_batch_tiles(fn, tile):
  """Runs fn on batch tiles one after another (lax.map), to keep each tile's state in cache."""
  def tiled(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
    batch = u.shape[0]
    if tile >= batch:
      return fn(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    split = lambda x: None if x is None else x.reshape(batch // tile, tile, *x.shape[1:])

    def one(xs):
      u_t, delta_t, B_t, C_t, z_t = xs
      return fn(u_t, delta_t, A, B_t, C_t, D, z_t, delta_bias, delta_softplus)

    y, h_last = jax.lax.map(one, tuple(map(split, (u, delta, B, C, z))))
    return y.reshape(u.shape), h_last.reshape(batch, *h_last.shape[2:])
  return tiled


def _shape(x):
  return tuple(getattr(x, "shape", ()))


def _check_args(u, delta, A, B, C, D, z, delta_bias):
  """Validates shapes and dtypes; returns B and C in (batch, length, groups, state) form."""
  if getattr(u, "ndim", None) != 3:
    raise ValueError(f"u: expected shape (batch, length, channels), got {_shape(u)}")
  batch, length, channels = u.shape
  if not jnp.issubdtype(u.dtype, jnp.floating):
    raise ValueError(f"u: expected a floating dtype, got {u.dtype}")
  if length < 1 or channels < 1 or batch < 1:
    raise ValueError(f"u: expected non-empty (batch, length, channels), got {u.shape}")
  for name, x in (("delta", delta), ("z", z)):
    if x is None and name == "z":
      continue
    if _shape(x) != u.shape:
      raise ValueError(f"{name}: expected shape (batch, length, channels) = {u.shape}, "
                       f"got {_shape(x)}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
      raise ValueError(f"{name}: expected a floating dtype, got {x.dtype}")
  if getattr(A, "ndim", None) != 2 or A.shape[0] != channels:
    raise ValueError(f"A: expected shape (channels, state) = ({channels}, state), got {_shape(A)}")
  state = A.shape[1]
  if A.dtype not in (jnp.float32, jnp.complex64):
    raise ValueError(f"A: expected float32 (or complex64), got {A.dtype}")
  out = []
  for name, x in (("B", B), ("C", C)):
    shape = _shape(x)
    if len(shape) == 3:
      x = x[:, :, None, :]  # (batch, length, 1, state)
      shape = x.shape
    if (len(shape) != 4 or shape[:2] != (batch, length) or shape[3] != state
        or shape[2] < 1 or channels % shape[2]):
      raise ValueError(
          f"{name}: expected shape (batch, length, state) = ({batch}, {length}, {state}) or "
          f"(batch, length, groups, state) with groups dividing channels={channels}, "
          f"got {_shape(B if name == 'B' else C)}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
      raise ValueError(f"{name}: expected a real floating dtype, got {x.dtype}")
    out.append(x)
  if out[0].shape[2] != out[1].shape[2]:
    raise ValueError(f"B and C: expected the same number of groups, got {out[0].shape[2]} "
                     f"and {out[1].shape[2]}")
  for name, x in (("D", D), ("delta_bias", delta_bias)):
    if x is not None and (_shape(x) != (channels,) or x.dtype != jnp.float32):
      raise ValueError(f"{name}: expected float32 of shape (channels,) = ({channels},), "
                       f"got {getattr(x, 'dtype', type(x).__name__)} {_shape(x)}")
  return out
