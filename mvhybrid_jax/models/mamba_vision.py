"""MambaVisionMixer: the state-space token mixer of MV_Hybrid's first half (spec section 1)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from kernels import selective_scan
from mvhybrid_jax.models import init
from mvhybrid_jax.models.depthwise import DepthwiseConv1d

A_INITS = ("s4d_real", "s4d_lin", "random_real")


def eigenvalue_init(kind: str, channels: int, state: int, key: jax.Array) -> jax.Array:
  """The diagonal state matrix A, (channels, state): the SSM's eigenvalues.

  Why it matters (Yu et al., ICLR 2025; spec section 5): for eigenvalues a_j = x_j + i y_j the
  transfer function is G(iw) = sum_j c_j b_j / (iw - a_j), whose total variation over
  frequencies [W, inf) is bounded by sum_j |c_j b_j| / (W - y_j). Negative real eigenvalues
  (y_j = 0) put that mass near w = 0 and let it decay as O(1/W): a low-frequency bias, which the
  paper credits for capturing the subtle, low-frequency morphology tied to gene expression.
  Complex eigenvalues place mass near w = y_j instead.

    "s4d_real":    A_n = -(n + 1), n = 0..state-1: negative real (the release's init).
    "s4d_lin":     A_n = -1/2 + i pi n: complex (scanned with impl "xla" or "reference").
    "random_real": A = -exp(U), U uniform in [log 1/2, log state]: negative real, the same range
                   as s4d_real without its structure (a control).
  """
  n = np.arange(state, dtype=np.float32)
  if kind == "s4d_real":
    a = -(n + 1.0)
    return jnp.broadcast_to(jnp.asarray(a), (channels, state))
  if kind == "s4d_lin":
    a = -0.5 + 1j * np.pi * n
    return jnp.broadcast_to(jnp.asarray(a, jnp.complex64), (channels, state))
  if kind == "random_real":
    log_a = jax.random.uniform(key, (channels, state), jnp.float32, math.log(0.5),
                               math.log(state))
    return -jnp.exp(log_a)
  raise ValueError(f"a_init: expected one of {A_INITS}, got {kind!r}")


class MambaVisionMixer(nnx.Module):
  """x -> in_proj -> (x, z); x: depthwise conv, SiLU, selective scan; z: depthwise conv, SiLU;
  out_proj(concat[y, z]). z is a symmetric non-SSM branch, not a gate (MambaVision).

  release_quirks=True reproduces the released model: the dt bias is applied twice (inside dt_proj
  and as the scan's delta_bias), the depthwise convs have no bias, and the global Linear init
  overrides Mamba's dt init (so at init delta = softplus(0 + 0)). False gives the textbook
  Mamba: bias once, conv bias, dt init log-uniform in [1e-3, 1e-1].
  """

  def __init__(self, dim: int, *, d_state: int = 16, d_conv: int = 4, expand: int = 2,
               a_init: str = "s4d_real", scan_impl: str = "auto", release_quirks: bool = True,
               dtype=jnp.float32, rngs: nnx.Rngs):
    self.d_inner = expand * dim
    half = self.d_inner // 2  # channels of the SSM branch and of the z branch
    self.dt_rank = math.ceil(dim / 16)
    self.d_state = d_state
    self.scan_impl = scan_impl
    self.release_quirks = release_quirks
    linear = lambda i, o, bias: nnx.Linear(i, o, use_bias=bias, dtype=dtype,
                                            kernel_init=init.trunc_normal, rngs=rngs)
    self.in_proj = linear(dim, self.d_inner, False)
    self.x_proj = linear(half, self.dt_rank + 2 * d_state, False)
    self.dt_proj = linear(self.dt_rank, half, True)
    self.out_proj = linear(self.d_inner, dim, False)
    conv = lambda: DepthwiseConv1d(half, d_conv, padding=((d_conv - 1) // 2, d_conv // 2),
                                   use_bias=not release_quirks, dtype=dtype,
                                   kernel_init=init.torch_default,
                                   bias_init=init.torch_default_bias(d_conv), rngs=rngs)
    self.conv1d_x, self.conv1d_z = conv(), conv()
    a = eigenvalue_init(a_init, half, d_state, rngs.params())
    if jnp.iscomplexobj(a) and scan_impl in ("pallas", "sequential"):
      raise ValueError(f"scan_impl: a_init={a_init!r} gives complex eigenvalues, which the "
                       f"{scan_impl} scan does not take; use 'auto', 'xla' or 'reference'")
    self.A_log = nnx.Param(jnp.log(-a))  # A = -exp(A_log); complex log for complex A
    self.D = nnx.Param(jnp.ones((half,), jnp.float32))
    if not release_quirks:
      self.dt_proj.kernel[...] = init.uniform_scale(self.dt_rank ** -0.5)(
          rngs.params(), (self.dt_rank, half))
      self.dt_proj.bias[...] = init.mamba_dt_bias(rngs.params(), half)

  @property
  def A(self) -> jax.Array:
    return -jnp.exp(self.A_log[...])

  def scan_inputs(self, x: jax.Array) -> tuple[dict, jax.Array]:
    """(the selective_scan arguments for input x, the z branch): what the SSM sees, for analyses
    of its token mixing (analysis.spectral.ssm_operator)."""
    xz = self.in_proj(x)
    x, z = jnp.split(xz, 2, axis=-1)  # (batch, tokens, d_inner / 2) each
    x = jax.nn.silu(self.conv1d_x(x))
    z = jax.nn.silu(self.conv1d_z(z))
    dt, B, C = jnp.split(self.x_proj(x), [self.dt_rank, self.dt_rank + self.d_state], axis=-1)
    dt = self.dt_proj(dt)  # (batch, tokens, d_inner / 2), bias included
    delta_bias = self.dt_proj.bias[...] if self.release_quirks else None
    return dict(u=x, delta=dt, A=self.A, B=B.astype(jnp.float32), C=C.astype(jnp.float32),
                D=self.D[...], delta_bias=delta_bias, delta_softplus=True), z

  def __call__(self, x: jax.Array) -> jax.Array:
    args, z = self.scan_inputs(x)
    y = selective_scan(**args, impl=self.scan_impl)
    return self.out_proj(jnp.concatenate([y, z.astype(y.dtype)], axis=-1))
