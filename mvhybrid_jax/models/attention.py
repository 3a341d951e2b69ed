"""Self-attention and MLP: the ViT blocks of MV_Hybrid's second half and of the ViT baselines."""

import jax
import jax.numpy as jnp
from flax import nnx

from mvhybrid_jax.models import init


def _linear(i, o, dtype, rngs):
  return nnx.Linear(i, o, dtype=dtype, kernel_init=init.trunc_normal,
                    bias_init=jax.nn.initializers.zeros, rngs=rngs)


class Attention(nnx.Module):
  """Multi-head self-attention: fused qkv with bias, scale 1/sqrt(head_dim), output projection."""

  def __init__(self, dim: int, *, num_heads: int, dtype=jnp.float32, rngs: nnx.Rngs):
    if dim % num_heads:
      raise ValueError(f"num_heads: must divide dim={dim}, got {num_heads}")
    self.num_heads = num_heads
    self.qkv = _linear(dim, 3 * dim, dtype, rngs)
    self.proj = _linear(dim, dim, dtype, rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    batch, tokens, dim = x.shape
    qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, dim // self.num_heads)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # (batch, tokens, heads, head_dim)
    y = jax.nn.dot_product_attention(q, k, v)
    return self.proj(y.reshape(batch, tokens, dim))


class Mlp(nnx.Module):
  """fc1 -> exact GELU -> fc2."""

  def __init__(self, dim: int, hidden: int, *, dtype=jnp.float32, rngs: nnx.Rngs):
    self.fc1 = _linear(dim, hidden, dtype, rngs)
    self.fc2 = _linear(hidden, dim, dtype, rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.fc2(jax.nn.gelu(self.fc1(x), approximate=False))
