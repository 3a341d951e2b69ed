"""Fused selective scan in Pallas: the state lives in registers, never in HBM.

One program owns one batch element and a block of channels; it walks the sequence in chunks of
`fwd_chunk` steps, unrolled so that all loads of a chunk are issued before the recurrence needs
them. Per step it reads u, delta, z (block) and B, C (state) and writes y (block): the
(batch, length, channels, state) tensor is never written. The forward pass of jax.grad also saves
h every `bwd_chunk` steps, (batch, length / bwd_chunk, state, channels) float32; the backward
kernel walks those chunks in reverse, recomputes each chunk's states from its saved start, then
runs the adjoint recurrence g_{t-1} = exp(d_t A) g_t + C_{t-1} dy_{t-1} back through them.

Backend: Pallas' Triton lowering, chosen over Mosaic GPU because
  - the same kernel body runs under interpret=True on CPU, so CI tests the code the GPU runs
    (all but two elementwise ops, log2 and 1/x, which compile to single PTX .approx
    instructions on CUDA); a Mosaic GPU kernel (warpgroup-level arrays, explicit SMEM staging,
    plgpu.kernel) has no CPU path and would need a second, untested copy of the algorithm;
  - the recurrence is a register-resident loop over small (state, channels) tiles with no
    matrix multiply: none of Mosaic GPU's strengths (wgmma, TMA pipelines) apply, while Triton's
    per-thread layouts fit it directly.
Against a Mosaic GPU Mamba-1 kernel (jax-linear-attention) on an H200, the best configuration of
the first tile layout was faster forward and slower backward; benchmarks/RESULTS.md has the
figures and what is still to be measured.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

try:  # the Triton backend ships with every jaxlib, but keep CPU-only installs importable
  from jax.experimental.pallas import triton as pltriton
except ImportError:  # pragma: no cover
  pltriton = None

F32 = jnp.float32


@dataclasses.dataclass(frozen=True)
class Config:
  """Static kernel parameters (hashable: they key the custom_vjp and the compile cache)."""
  softplus: bool
  # Defaults: chosen from the compiled code for sm_90a (benchmarks/scan_ptx.py, RESULTS.md),
  # pending GPU timings of this layout. One warp per program keeps every reduction over state
  # inside a thread or a warp. Forward block 32: an issue-bound estimate of 1.25x the exp floor
  # at both paper shapes, with three or more warps per scheduler to hide latency. Block 64
  # needs fewer instructions per element (1.16x at 512 x 50) but at 128 x 257 its 768 programs
  # leave the busiest scheduler two warps where the average is 1.45 (1.55x).
  fwd_block: int = 32      # channels per program, forward
  bwd_block: int = 32      # channels per program, backward
  fwd_chunk: int = 4       # time steps unrolled per forward loop iteration
  bwd_chunk: int = 4       # the same for the backward, which holds bwd_chunk + 1 states in
                           # registers; the forward saves h every bwd_chunk steps, (batch,
                           # length / bwd_chunk, state, channels) float32: 4x the size of u at 4
  fwd_warps: int = 1
  bwd_warps: int = 1
  # Software pipelining: load the next chunk before computing this one, so that its memory
  # latency hides behind a chunk of compute (Triton's pipeliner, num_stages, leaves these loads
  # alone). For a scheduler with a single warp; where several share one, they hide each other's
  # latency, and the extra register moves (+4-7% instructions) cost more.
  fwd_prefetch: bool = False
  bwd_prefetch: bool = False
  interpret: bool = False
  mufu: bool = False       # log2 and 1/x as PTX .approx instructions (CUDA, not interpreted)


def _gpu():
  """The first GPU device, or None."""
  try:
    return jax.devices("gpu")[0]
  except RuntimeError:
    return None


def _rocm() -> bool:
  dev = _gpu()
  return dev is not None and getattr(dev, "compute_capability", None) is None  # none on ROCm


def gpu_supported() -> bool:
  """True where the Triton backend can compile the kernel (CUDA sm_80+ or ROCm)."""
  if pltriton is None or _gpu() is None:
    return False
  return _rocm() or float(_gpu().compute_capability) >= 8.0


def _next_pow2(n: int) -> int:
  return 1 << (n - 1).bit_length()


def selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus, *, interpret=None,
                   **config):
  """B, C: (batch, length, groups, state). Returns y and h_last (batch, channels, state).

  config: overrides of `Config`'s kernel parameters (blocks, chunks, warps).
  Pads channels per group to a multiple of the block and state to a power of two (Triton
  tensors must have power-of-two sizes); padded channels and states carry zeros and are sliced
  off, so they change neither outputs nor gradients.
  """
  if interpret is None:
    interpret = jax.default_backend() != "gpu"
  batch, length, channels = u.shape
  groups, state = B.shape[2], A.shape[1]
  per_group = channels // groups
  config = {"mufu": not interpret and not _rocm(), **config}
  cfg = Config(softplus=bool(delta_softplus), interpret=bool(interpret), **config)
  if cfg.fwd_chunk % cfg.bwd_chunk:
    raise ValueError(f"fwd_chunk={cfg.fwd_chunk} must be a multiple of bwd_chunk={cfg.bwd_chunk}")
  cfg = dataclasses.replace(cfg, fwd_block=min(cfg.fwd_block, _next_pow2(per_group)),
                            bwd_block=min(cfg.bwd_block, _next_pow2(per_group)))
  multiple = max(cfg.fwd_block, cfg.bwd_block)
  per_group_p = -(-per_group // multiple) * multiple
  state_p = _next_pow2(state)

  def pad_channels(x, fill=0.0):  # (..., channels) -> (..., groups * per_group_p)
    if per_group_p == per_group:
      return x
    x = x.reshape(*x.shape[:-1], groups, per_group)
    x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, per_group_p - per_group)],
                constant_values=fill)
    return x.reshape(*x.shape[:-2], groups * per_group_p)

  def pad_state(x):  # (..., state) -> (..., state_p)
    return x if state_p == state else jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, state_p - state)])

  D = jnp.zeros((channels,), F32) if D is None else D
  delta_bias = jnp.zeros((channels,), F32) if delta_bias is None else delta_bias
  A_t = pad_state(pad_channels(A.T).T).T  # (state_p, channels_p)
  y, h_last = _scan(pad_channels(u), pad_channels(delta), A_t, pad_state(B), pad_state(C),
                    pad_channels(D), pad_channels(delta_bias),
                    None if z is None else pad_channels(z), cfg)
  # (batch, length, channels_p) -> (batch, length, channels)
  y = y.reshape(batch, length, groups, per_group_p)[..., :per_group].reshape(u.shape)
  # (batch, state_p, channels_p) -> (batch, channels, state)
  h_last = h_last.reshape(batch, state_p, groups, per_group_p)[:, :state, :, :per_group]
  return y, jnp.swapaxes(h_last.reshape(batch, state, channels), 1, 2)


# ---------------------------------------------------------------------------------------------
# Kernels. Refs inside a program: u, delta, z, dy, du, ... (length, block); B, C, dB, dC
# (length, state); A, dA, h (state, block); D, delta_bias (block,).
#
# State-major tiles, (state, block) with channels contiguous: Triton then lays a tile out with
# all `state` values of a channel in one thread (threadsPerWarp [1, 32] for 128 channels a warp),
# so the sum over state is in-thread and per-channel vectors (u, delta, y) need no shuffle or
# shared-memory layout conversion. The channel-major (block, state) tiles of the first version
# split state over lanes and paid 3 shared-memory layout conversions with barriers per step
# (read off the TTGIR and PTX, benchmarks/RESULTS.md).


LOG2E = 1.4426950408889634
LN2 = 0.6931471805599453


def _approx(instruction, exact):
  """An elementwise op as one PTX `instruction`.approx.ftz.f32 (a single MUFU op; relative error
  about 2^-22) where cfg.mufu, else `exact` (interpret mode, ROCm)."""
  def op(x, cfg):
    if not cfg.mufu:
      return exact(x)
    [y] = pltriton.elementwise_inline_asm(
        f"{instruction}.approx.ftz.f32 $0, $1;", args=[x], constraints="=f,f", pack=1,
        result_shape_dtypes=[jax.ShapeDtypeStruct(x.shape, F32)])
    return y
  return op


_log2 = _approx("lg2", jnp.log2)
_reciprocal = _approx("rcp", lambda x: 1.0 / x)


def _softplus(x, cfg):
  # max(x, 0) + log(1 + exp(-|x|)) in two MUFU ops; libdevice's log1p, which it replaces, took a
  # quarter of the forward's instructions (benchmarks/RESULTS.md)
  return jnp.maximum(x, 0.0) + _log2(1.0 + jnp.exp2(-jnp.abs(x) * LOG2E), cfg) * LN2


def _sigmoid(x, cfg):
  return _reciprocal(1.0 + jnp.exp2(-x * LOG2E), cfg)


def _load_chunk(row_refs, t0, n, length):
  """Loads the rows of steps t0..t0+n-1 of each ref in row_refs (u, delta, B, C, then any
  others) as float32.

  Triton cannot prove that outputs do not alias inputs, so a load is never moved above an
  earlier store: a chunk's loads are all issued before its first store (or, prefetched, before
  the previous chunk's compute), paying the memory latency once per chunk, not once per step.
  Steps past the end (a prefetch beyond the last chunk) read the last row and go unused.
  """
  rows = []
  for k in range(n):
    t = jnp.minimum(t0 + k, length - 1)
    rows.append(tuple(ref[t, :].astype(F32) for ref in row_refs))
  return rows


def _discretise(rows, bias, cfg):
  """Per step (u, delta + bias, d, B_t, C_t, *extra) with d the discretisation step."""
  out = []
  for u, delta, b, c, *extra in rows:
    d_raw = delta + bias
    out.append((u, d_raw, _softplus(d_raw, cfg) if cfg.softplus else d_raw, b, c, *extra))
  return out


def _walk(step, carry, n_full, load, prefetch):
  """Runs carry = step(i, rows_i, carry) over the chunks i = 0..n_full-1, rows_i = load(i).

  With prefetch the loop also carries the next chunk's rows, loaded before this chunk's compute.
  Returns the carry and, with prefetch, the rows of chunk n_full (its valid steps are the tail).
  """
  if not prefetch:
    return jax.lax.fori_loop(0, n_full, lambda i, c: step(i, load(i), c), carry), None

  def body(i, c):
    carry, rows = c
    nxt = load(i + 1)
    return step(i, rows, carry), nxt

  return jax.lax.fori_loop(0, n_full, body, (carry, load(0)))


def _forward_kernel(u_ref, delta_ref, A_ref, B_ref, C_ref, D_ref, bias_ref, z_ref,  # inputs
                    y_ref, h_last_ref, *hs_ref,  # outputs; hs (the saved states) for the backward
                    cfg, length):
  A2 = A_ref[...] * LOG2E  # exp(d A) = exp2(d A log2 e): one MUFU op, no range reduction
  Dv, bias = D_ref[...], bias_ref[...]
  state, block = A2.shape
  chunk = cfg.fwd_chunk
  n_full, tail = divmod(length, chunk)
  row_refs = (u_ref, delta_ref, B_ref, C_ref) + ((z_ref,) if z_ref is not None else ())
  per_chunk = chunk // cfg.bwd_chunk  # saved states per forward chunk

  def steps(i, rows, h):
    """Steps i * chunk + k over the given rows; saves h before every bwd_chunk-th step."""
    t0 = i * chunk
    ys = []
    for k, (u, _, d, b, c, *zt) in enumerate(_discretise(rows, bias, cfg)):
      if hs_ref and k % cfg.bwd_chunk == 0:
        hs_ref[0][i * per_chunk + k // cfg.bwd_chunk] = h
      h = jnp.exp2(d[None, :] * A2) * h + (d * u)[None, :] * b[:, None]
      y = jnp.sum(h * c[:, None], axis=0) + Dv * u
      if zt:
        y = y * zt[0] * _sigmoid(zt[0], cfg)
      ys.append(y)
    for k, y in enumerate(ys):
      y_ref[t0 + k, :] = y.astype(y_ref.dtype)
    return h

  h, rows = _walk(steps, jnp.zeros((state, block), F32), n_full,
                  lambda i: _load_chunk(row_refs, i * chunk, chunk, length),
                  cfg.fwd_prefetch and n_full > 0)
  if tail:
    if rows is None:
      rows = _load_chunk(row_refs, n_full * chunk, tail, length)
    h = steps(n_full, rows[:tail], h)
  h_last_ref[...] = h


def _backward_kernel(u_ref, delta_ref, A_ref, B_ref, C_ref, D_ref, bias_ref, z_ref, dy_ref,
                     hs_ref, dh_last_ref,  # inputs
                     du_ref, ddelta_ref, dA_ref, dB_ref, dC_ref, dD_ref, dbias_ref, *dz_ref,
                     cfg, length):  # outputs; dz where the forward had z
  A = A_ref[...]
  A2 = A * LOG2E
  Dv, bias = D_ref[...], bias_ref[...]
  row_refs = (u_ref, delta_ref, B_ref, C_ref, dy_ref) + ((z_ref,) if z_ref is not None else ())
  chunk = cfg.bwd_chunk
  n_full, tail = divmod(length, chunk)

  def load(ci, n=chunk):  # chunk ci's rows and its saved start state
    return _load_chunk(row_refs, ci * chunk, n, length), hs_ref[ci]

  def chunk_grads(ci, loaded, carry):
    g, dA_acc, dD_acc, dbias_acc = carry  # g = dL/dh after the chunk's last step
    rows, h = loaded
    rows = _discretise(rows, bias, cfg)
    t0 = ci * chunk
    states, decays = [h], []
    for u, _, d, b, *_ in rows:  # recompute the chunk's states from its saved start
      decays.append(jnp.exp2(d[None, :] * A2))
      h = decays[-1] * h + (d * u)[None, :] * b[:, None]
      states.append(h)
    grads = []
    for k in reversed(range(len(rows))):
      u, d_raw, d, b, c, gy, *zt = rows[k]  # gy = dL/d(y before the gate)
      h_t, h_prev, decay = states[k + 1], states[k], decays[k]
      dz = None
      if zt:
        s = _sigmoid(zt[0], cfg)
        y0 = jnp.sum(h_t * c[:, None], axis=0) + Dv * u
        dz = gy * y0 * s * (1.0 + zt[0] * (1.0 - s))
        gy = gy * zt[0] * s
      dD_acc = dD_acc + gy * u
      dC = jnp.sum(gy[None, :] * h_t, axis=1)
      g = g + gy[None, :] * c[:, None]  # dL/dh_t
      dB = jnp.sum(g * (d * u)[None, :], axis=1)
      gb = jnp.sum(g * b[:, None], axis=0)
      gh = g * decay * h_prev
      dA_acc = dA_acc + gh * d[None, :]
      dd = jnp.sum(gh * A, axis=0) + u * gb
      if cfg.softplus:
        dd = dd * _sigmoid(d_raw, cfg)
      dbias_acc = dbias_acc + dd
      grads.append((t0 + k, gy * Dv + d * gb, dd, dB, dC, dz))
      g = g * decay  # dL/dh_{t-1}
    for t, du, dd, dB, dC, dz in grads:
      du_ref[t, :] = du.astype(du_ref.dtype)
      ddelta_ref[t, :] = dd.astype(ddelta_ref.dtype)
      dB_ref[t, :] = dB
      dC_ref[t, :] = dC
      if dz is not None:
        dz_ref[0][t, :] = dz.astype(dz_ref[0].dtype)
    return g, dA_acc, dD_acc, dbias_acc

  block = A2.shape[1]
  carry = (dh_last_ref[...], jnp.zeros_like(A2), jnp.zeros((block,), F32),
           jnp.zeros((block,), F32))
  if tail:
    carry = chunk_grads(n_full, load(n_full, tail), carry)
  # The full chunks in reverse: loop index i is chunk n_full - 1 - i (a prefetch past chunk 0
  # reloads chunk 0 and goes unused).
  last = n_full - 1
  (_, dA_acc, dD_acc, dbias_acc), _ = _walk(
      lambda i, loaded, c: chunk_grads(last - i, loaded, c), carry, n_full,
      lambda i: load(jnp.maximum(last - i, 0)), cfg.bwd_prefetch and n_full > 0)
  dA_ref[...] = dA_acc
  dD_ref[...] = dD_acc
  dbias_ref[...] = dbias_acc


# ---------------------------------------------------------------------------------------------
# pallas_call wrappers. Grid: (batch, channels // block).


def _specs(block, length, state, per_group_blocks, n_chunks):
  """BlockSpecs by array kind; B and C pick the group of the program's channel block."""
  return {
      "hs": pl.BlockSpec((None, n_chunks, state, block), lambda b, j: (b, 0, 0, j)),
      "seq": pl.BlockSpec((None, length, block), lambda b, j: (b, 0, j)),
      "bc": pl.BlockSpec((None, length, None, state),
                         lambda b, j: (b, 0, j // per_group_blocks, 0)),
      "A": pl.BlockSpec((state, block), lambda b, j: (0, j)),
      "vec": pl.BlockSpec((block,), lambda b, j: (j,)),
      "h": pl.BlockSpec((None, state, block), lambda b, j: (b, 0, j)),
  }


def _compiler_params(cfg, warps):
  if cfg.interpret or pltriton is None:
    return None
  return pltriton.CompilerParams(num_warps=warps, num_stages=1)


def _forward(u, delta, A, B, C, D, bias, z, cfg, save_states):
  batch, length, channels = u.shape
  groups, state = B.shape[2], A.shape[0]
  block = cfg.fwd_block
  n_chunks = -(-length // cfg.bwd_chunk)  # saved states
  spec = _specs(block, length, state, channels // groups // block, n_chunks)
  in_specs = [spec[k] for k in ("seq", "seq", "A", "bc", "bc", "vec", "vec")]
  in_specs.append(None if z is None else spec["seq"])  # no z: the kernel's z_ref is None
  out_shape = [jax.ShapeDtypeStruct(u.shape, u.dtype),
               jax.ShapeDtypeStruct((batch, state, channels), F32)]
  out_specs = [spec["seq"], spec["h"]]
  if save_states:
    out_shape.append(jax.ShapeDtypeStruct((batch, n_chunks, state, channels), F32))
    out_specs.append(spec["hs"])
  outs = pl.pallas_call(
      functools.partial(_forward_kernel, cfg=cfg, length=length), out_shape=out_shape,
      grid=(batch, channels // block), in_specs=in_specs, out_specs=out_specs,
      interpret=cfg.interpret, name="selective_scan_fwd",
      compiler_params=_compiler_params(cfg, cfg.fwd_warps))(u, delta, A, B, C, D, bias, z)
  return outs if save_states else (*outs, None)


def _backward(res, dy, dh_last, cfg):
  u, delta, A, B, C, D, bias, z, hs = res
  batch, length, channels = u.shape
  groups, state = B.shape[2], A.shape[0]
  block = cfg.bwd_block
  n_blocks = channels // block
  per_group_blocks = channels // groups // block
  spec = _specs(block, length, state, per_group_blocks, hs.shape[1])
  in_specs = [spec[k] for k in ("seq", "seq", "A", "bc", "bc", "vec", "vec")]
  in_specs += [None if z is None else spec["seq"], spec["seq"], spec["hs"], spec["h"]]
  sds = jax.ShapeDtypeStruct
  part = pl.BlockSpec((None, None, length, state), lambda b, j: (b, j, 0, 0))
  outs = [("du", sds(u.shape, u.dtype), spec["seq"]),
          ("ddelta", sds(u.shape, delta.dtype), spec["seq"]),
          ("dA", sds((batch, state, channels), F32), spec["h"]),
          ("dB", sds((batch, n_blocks, length, state), F32), part),
          ("dC", sds((batch, n_blocks, length, state), F32), part),
          ("dD", sds((batch, channels), F32), pl.BlockSpec((None, block), lambda b, j: (b, j))),
          ("dbias", sds((batch, channels), F32),
           pl.BlockSpec((None, block), lambda b, j: (b, j)))]
  if z is not None:
    outs.append(("dz", sds(u.shape, z.dtype), spec["seq"]))
  res = pl.pallas_call(
      functools.partial(_backward_kernel, cfg=cfg, length=length),
      out_shape=[s for _, s, _ in outs], grid=(batch, n_blocks), in_specs=in_specs,
      out_specs=[s for _, _, s in outs], interpret=cfg.interpret, name="selective_scan_bwd",
      compiler_params=_compiler_params(cfg, cfg.bwd_warps))(
          u, delta, A, B, C, D, bias, z, dy, hs, dh_last)
  grads = dict(zip([name for name, _, _ in outs], res))

  def per_group(x):  # (batch, n_blocks, length, state) -> (batch, length, groups, state)
    x = x.reshape(batch, groups, per_group_blocks, length, state).sum(axis=2)
    return jnp.moveaxis(x, 1, 2)

  return (grads["du"], grads["ddelta"], grads["dA"].sum(0),
          per_group(grads["dB"]).astype(B.dtype), per_group(grads["dC"]).astype(C.dtype),
          grads["dD"].sum(0), grads["dbias"].sum(0), grads.get("dz"))


@functools.partial(jax.custom_vjp, nondiff_argnums=(8,))
def _scan(u, delta, A, B, C, D, bias, z, cfg):
  y, h_last, _ = _forward(u, delta, A, B, C, D, bias, z, cfg, save_states=False)
  return y, h_last


def _scan_fwd(u, delta, A, B, C, D, bias, z, cfg):
  y, h_last, hs = _forward(u, delta, A, B, C, D, bias, z, cfg, save_states=True)
  return (y, h_last), (u, delta, A, B, C, D, bias, z, hs)


def _scan_bwd(cfg, res, cts):
  dy, dh_last = cts
  return _backward(res, dy, dh_last.astype(F32), cfg)


_scan.defvjp(_scan_fwd, _scan_bwd)
