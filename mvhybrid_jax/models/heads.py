"""DINOv2's projection heads (separate DINO and iBOT heads in the MV_Hybrid recipe)."""

import jax
import jax.numpy as jnp
from flax import nnx

from mvhybrid_jax.models import init


class DINOHead(nnx.Module):
  """MLP in -> hidden -> hidden -> bottleneck (GELU between, no norm), L2-normalise, then a
  weight-normalised linear layer to the prototypes, without bias.

  The last layer keeps PyTorch's weight_norm parametrisation: direction `weight_v`
  (bottleneck, prototypes) and per-prototype scale `weight_g`, initialised to 1, so that each
  prototype is a unit vector at init. The MLP gets trunc-normal(0.02) weights and zero biases;
  `weight_v` PyTorch's default Linear init, as in DINOv2 (its init runs before the last layer).
  """

  def __init__(self, in_dim: int, out_dim: int = 65536, *, hidden: int = 2048,
               bottleneck: int = 256, nlayers: int = 3, dtype=jnp.float32, rngs: nnx.Rngs):
    dims = [in_dim] + [hidden] * (nlayers - 1) + [bottleneck]
    self.mlp = nnx.List([nnx.Linear(a, b, dtype=dtype, kernel_init=init.trunc_normal,
                                    bias_init=jax.nn.initializers.zeros, rngs=rngs)
                         for a, b in zip(dims[:-1], dims[1:])])
    self.weight_v = nnx.Param(init.torch_default(rngs.params(), (bottleneck, out_dim)))
    self.weight_g = nnx.Param(jnp.ones((out_dim,), jnp.float32))

  def __call__(self, x: jax.Array) -> jax.Array:
    for i, layer in enumerate(self.mlp):
      x = layer(x)
      if i < len(self.mlp) - 1:
        x = jax.nn.gelu(x, approximate=False)
    x = x.astype(jnp.float32)
    x = x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
    v = self.weight_v[...]
    w = v / jnp.linalg.norm(v, axis=0, keepdims=True) * self.weight_g[...]
    return x @ w
