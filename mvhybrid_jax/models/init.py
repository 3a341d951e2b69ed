"""Initialisers that reproduce the PyTorch release's (spec section 1, "init")."""

import math

import jax
import jax.numpy as jnp

# timm's trunc_normal_(std=0.02) cuts at +-2 in absolute value, i.e. +-100 std: a plain normal.
trunc_normal = jax.nn.initializers.truncated_normal(stddev=0.02, lower=-100.0, upper=100.0)

# PyTorch's default for Conv layers: kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in)).
torch_default = jax.nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def torch_default_bias(fan_in: int):
  """PyTorch's default Conv bias: U(+-1/sqrt(fan_in))."""
  return uniform_scale(1.0 / math.sqrt(fan_in))


def uniform_scale(bound: float):
  """U(-bound, bound)."""
  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)
  return init


def mamba_dt_bias(key, channels, dt_min=1e-3, dt_max=1e-1, floor=1e-4):
  """Mamba's dt_proj bias: inverse softplus of dt drawn log-uniform in [dt_min, dt_max]."""
  dt = jnp.exp(jax.random.uniform(key, (channels,), jnp.float32, math.log(dt_min),
                                  math.log(dt_max)))
  dt = jnp.maximum(dt, floor)
  return dt + jnp.log(-jnp.expm1(-dt))
