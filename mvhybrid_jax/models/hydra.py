"""The Hydra mixer of Hydra_EinFFT and Hydra_Hybrid (Hwang et al., "Hydra: Bidirectional State
Space Models Through Generalized Matrix Mixers", 2024; spec section 2).

A quasiseparable matrix mixer built from two Mamba-2 SSD scans and a diagonal, with shared
projections: in_proj gives z, x, forward and backward B, C and dt; a depthwise conv (non-causal,
"same") with SiLU runs over x, B, C; then

    y = shift(SSD(x; dt_f, B_f, C_f)) + flip(shift(SSD(flip(x); dt_b, B_b, C_b))) + x * (D + fc_D(x))

where shift moves the outputs one token later (so each scan covers strictly earlier, resp. later,
tokens), A (one per head) and D are shared by both directions, and fc_D gives a per-token,
per-head diagonal. Output: RMSNorm(y * silu(z)) then out_proj. Mamba-2's inits: A uniform in
[1, 16] per head, dt log-uniform in [1e-3, 1e-1] through dt_bias.

bidirectional=False keeps only the forward scan and makes the conv causal: a token then sees only
itself and earlier tokens (Mamba-2).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from kernels import ssd
from mvhybrid_jax.models import init
from mvhybrid_jax.models.depthwise import DepthwiseConv1d


def _shift(y):
  """(batch, tokens, ...) -> one token later, zeros first."""
  return jnp.pad(y, [(0, 0), (1, 0)] + [(0, 0)] * (y.ndim - 2))[:, :-1]


class HydraMixer(nnx.Module):
  def __init__(self, dim: int, *, d_state: int = 64, d_conv: int = 7, expand: int = 2,
               head_dim: int = 64, chunk_size: int = 64, bidirectional: bool = True,
               dtype=jnp.float32, rngs: nnx.Rngs):
    d_inner = expand * dim
    if d_inner % head_dim:
      raise ValueError(f"head_dim: {head_dim} does not divide expand * dim = {d_inner}")
    self.d_inner, self.d_state, self.head_dim = d_inner, d_state, head_dim
    self.heads = d_inner // head_dim
    self.chunk_size, self.bidirectional = chunk_size, bidirectional
    conv_channels = d_inner + 4 * d_state  # x, B_f, B_b, C_f, C_b
    linear = lambda i, o, bias: nnx.Linear(i, o, use_bias=bias, dtype=dtype,
                                           kernel_init=init.trunc_normal, rngs=rngs)
    self.in_proj = linear(dim, 2 * d_inner + 4 * d_state + 2 * self.heads, False)
    pad = (d_conv - 1, 0) if not bidirectional else ((d_conv - 1) // 2, d_conv // 2)
    self.conv1d = DepthwiseConv1d(conv_channels, d_conv, padding=pad, dtype=dtype,
                                  kernel_init=init.torch_default,
                                  bias_init=init.torch_default_bias(d_conv), rngs=rngs)
    self.fc_D = linear(d_inner, self.heads, False)
    self.A_log = nnx.Param(jnp.log(jax.random.uniform(rngs.params(), (self.heads,),
                                                      jnp.float32, 1.0, 16.0)))
    self.D = nnx.Param(jnp.ones((self.heads,), jnp.float32))
    self.dt_bias = nnx.Param(init.mamba_dt_bias(rngs.params(), self.heads))
    self.norm = nnx.RMSNorm(d_inner, epsilon=1e-5, dtype=dtype, rngs=rngs)
    self.out_proj = linear(d_inner, dim, False)

  def _scan(self, x, dt, B, C):
    b, l, _ = x.shape
    heads = lambda v: v.reshape(b, l, self.heads, self.head_dim)
    y = ssd(heads(x), dt, -jnp.exp(self.A_log[...]), B[:, :, None, :], C[:, :, None, :],
            dt_bias=self.dt_bias[...], dt_softplus=True, chunk_size=self.chunk_size)
    return y.reshape(b, l, self.d_inner)

  def __call__(self, u):
    n, h, d = self.d_state, self.heads, self.d_inner
    z, xbc, dt = jnp.split(self.in_proj(u), [d, 2 * d + 4 * n], axis=-1)
    xbc = jax.nn.silu(self.conv1d(xbc))
    x, b_f, b_b, c_f, c_b = jnp.split(xbc, [d, d + n, d + 2 * n, d + 3 * n], axis=-1)
    dt_f, dt_b = dt[..., :h], dt[..., h:]
    y = self._scan(x, dt_f, b_f, c_f)
    if self.bidirectional:
      flip = lambda v: jnp.flip(v, axis=1)
      y = _shift(y) + flip(_shift(self._scan(flip(x), flip(dt_b), flip(b_b), flip(c_b))))
    diag = self.D[...] + self.fc_D(x).astype(jnp.float32)  # (batch, tokens, heads)
    y = y + (x.reshape(*x.shape[:2], h, -1) * diag[..., None]).reshape(x.shape).astype(y.dtype)
    return self.out_proj(self.norm(y * jax.nn.silu(z)))
