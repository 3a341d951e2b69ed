"""The Vision Mamba mixer of ViM_EinFFT (Zhu et al., "Vision Mamba", 2024; spec section 2).

Bidirectional Mamba: one input projection to (x, z) and one output projection, shared; each
direction has its own causal depthwise conv, x_proj, dt_proj, A and D, and the backward one scans
the reversed token sequence. Each scan is gated by silu(z) (Mamba's gate), and the two directions
are averaged before out_proj (Vim's "v2" block with divided output). Mamba's own inits: dt
log-uniform in [1e-3, 1e-1] through the dt_proj bias (applied once), conv biases, A from
eigenvalue_init (S4D-real by default).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from kernels import selective_scan
from mvhybrid_jax.models import init
from mvhybrid_jax.models.depthwise import DepthwiseConv1d
from mvhybrid_jax.models.mamba_vision import eigenvalue_init


class Direction(nnx.Module):
  """One direction's SSM parameters: conv, x_proj, dt_proj, A_log, D."""

  def __init__(self, channels: int, dt_rank: int, d_state: int, d_conv: int, a_init: str, dtype,
               rngs: nnx.Rngs):
    self.dt_rank, self.d_state = dt_rank, d_state
    self.conv1d = DepthwiseConv1d(channels, d_conv, padding=(d_conv - 1, 0), dtype=dtype,
                                  kernel_init=init.torch_default,
                                  bias_init=init.torch_default_bias(d_conv), rngs=rngs)
    self.x_proj = nnx.Linear(channels, dt_rank + 2 * d_state, use_bias=False, dtype=dtype,
                             kernel_init=init.trunc_normal, rngs=rngs)
    self.dt_proj = nnx.Linear(dt_rank, channels, dtype=dtype,
                              kernel_init=init.uniform_scale(dt_rank ** -0.5),
                              bias_init=lambda key, shape, dtype=jnp.float32: init.mamba_dt_bias(
                                  key, shape[0]), rngs=rngs)
    a = eigenvalue_init(a_init, channels, d_state, rngs.params())
    if jnp.iscomplexobj(a):
      raise ValueError(f"a_init: {a_init!r} is complex; ViM's mixer takes negative real "
                       "eigenvalues (s4d_real, random_real)")
    self.A_log = nnx.Param(jnp.log(-a))
    self.D = nnx.Param(jnp.ones((channels,), jnp.float32))

  def __call__(self, x, z, scan_impl):
    """x, z (batch, tokens, channels), in scan order."""
    x = jax.nn.silu(self.conv1d(x))
    dt, B, C = jnp.split(self.x_proj(x), [self.dt_rank, self.dt_rank + self.d_state], axis=-1)
    return selective_scan(x, self.dt_proj(dt), -jnp.exp(self.A_log[...]), B.astype(jnp.float32),
                          C.astype(jnp.float32), self.D[...], z=z, delta_softplus=True,
                          impl=scan_impl)


class VimMixer(nnx.Module):
  """x (batch, tokens, dim) -> (batch, tokens, dim). bidirectional=False drops the backward
  scan: a token then sees only itself and earlier tokens."""

  def __init__(self, dim: int, *, d_state: int = 16, d_conv: int = 4, expand: int = 2,
               a_init: str = "s4d_real", scan_impl: str = "auto", bidirectional: bool = True,
               dtype=jnp.float32, rngs: nnx.Rngs):
    d_inner = expand * dim
    dt_rank = math.ceil(dim / 16)
    self.scan_impl = scan_impl
    self.in_proj = nnx.Linear(dim, 2 * d_inner, use_bias=False, dtype=dtype,
                              kernel_init=init.trunc_normal, rngs=rngs)
    self.out_proj = nnx.Linear(d_inner, dim, use_bias=False, dtype=dtype,
                               kernel_init=init.trunc_normal, rngs=rngs)
    make = lambda: Direction(d_inner, dt_rank, d_state, d_conv, a_init, dtype, rngs)
    self.forward = make()
    self.backward = make() if bidirectional else None

  def __call__(self, x):
    x, z = jnp.split(self.in_proj(x), 2, axis=-1)  # (batch, tokens, d_inner) each
    y = self.forward(x, z, self.scan_impl)
    if self.backward is not None:
      flip = lambda v: jnp.flip(v, axis=1)
      y = (y + flip(self.backward(flip(x), flip(z), self.scan_impl))) / 2
    return self.out_proj(y)
