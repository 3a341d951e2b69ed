"""AdamW with DINOv2's parameter groups: no weight decay on biases, norms and layer-scale gammas;
a learning-rate multiplier on the patch embedding; layer-wise lr decay; the heads' last layers
frozen for a while; gradients clipped per module (backbone, DINO head, iBOT head) as DINOv2 does,
or by one global norm."""

from __future__ import annotations

import collections

import jax
import jax.numpy as jnp
import optax

from mvhybrid_jax.sharding import path_name


def _names(path) -> list[str]:
  return path_name(path).split("/")


def decay_mask(params):
  """True where weight decay applies. Excluded, as DINOv2's groups: names ending in bias, any
  name containing norm, and layer-scale gammas. (A_log, D, CLS/mask tokens and EinFFT's
  complex biases keep their decay, as in the paper's run.)"""
  def keep(path, _):
    names = _names(path)
    return not (names[-1] == "bias" or any("norm" in n for n in names)
                or names[-1] == "gamma")
  return jax.tree_util.tree_map_with_path(keep, params)


def module_norms(grads) -> dict[str, jax.Array]:
  """{top-level module name ("backbone", "dino_head", "ibot_head"): L2 norm of its gradients}."""
  squares = collections.defaultdict(float)
  for path, g in jax.tree_util.tree_leaves_with_path(grads):
    squares[_names(path)[0]] += jnp.sum(jnp.square(g.astype(jnp.float32)))
  return {name: jnp.sqrt(sq) for name, sq in squares.items()}


def clip_by_module_norm(max_norm: float) -> optax.GradientTransformation:
  """Each top-level module's gradients scaled by min(1, max_norm / (its norm + 1e-6)):
  torch.nn.utils.clip_grad_norm_ applied to each module separately, as DINOv2's trainer does
  (one global norm would let the backbone's large gradients shrink the heads')."""

  def update(updates, state, params=None):
    del params
    coef = {name: jnp.minimum(1.0, max_norm / (norm + 1e-6))
            for name, norm in module_norms(updates).items()}
    scaled = jax.tree_util.tree_map_with_path(
        lambda path, g: (g * coef[_names(path)[0]]).astype(g.dtype), updates)
    return scaled, state

  return optax.GradientTransformation(lambda _: optax.EmptyState(), update)


CLIP_SCOPES = ("module", "global")


EMBEDDING_PARAMS = (  # the backbone's embedding and token parameters (layer 0)
    "patch_embed", "cls_token", "mask_token", "pos_embed", "register_tokens")


def lr_multiplier(names: list[str], *, patch_embed_lr: float = 0.2, layer_decay: float = 1.0,
                  num_layers: int = 0) -> float:
  """DINOv2's per-parameter lr factor (get_vit_lr_decay_rate, then the patch-embed multiplier):
  layer_decay ** (num_layers + 1 - layer), layer = 0 for the backbone's embeddings and tokens,
  i + 1 for backbone block i, num_layers + 1 (no decay) for the final norm and the heads."""
  layer = num_layers + 1
  if names[0] == "backbone":
    if any(n in EMBEDDING_PARAMS for n in names):
      layer = 0
    elif "blocks" in names:
      layer = int(names[names.index("blocks") + 1]) + 1
  m = layer_decay ** (num_layers + 1 - layer)
  return m * patch_embed_lr if "patch_embed" in names else m


def adamw(*, learning_rate: optax.Schedule, weight_decay: optax.Schedule, clip: float = 3.0,
          clip_scope: str = "module", patch_embed_lr: float = 0.2, layer_decay: float = 1.0,
          num_layers: int = 0, freeze_last_layer_steps: int = 0, b1: float = 0.9,
          b2: float = 0.999) -> optax.GradientTransformation:
  """clip (per module, or one global norm) -> Adam -> decoupled weight decay (masked) ->
  per-group lr -> -lr(step); the last layers' updates are zeroed for the first
  freeze_last_layer_steps steps. The groups are read off the parameter names of whatever tree the
  optimiser is given."""

  def scale_groups():
    def update(updates, state, params=None):
      del params
      frozen = state.count < freeze_last_layer_steps
      def scale(path, u):
        names = _names(path)
        m = lr_multiplier(names, patch_embed_lr=patch_embed_lr, layer_decay=layer_decay,
                          num_layers=num_layers)
        if names[-1] in ("weight_v", "weight_g"):
          m = jnp.where(frozen, 0.0, m)
        return u * m
      out = jax.tree_util.tree_map_with_path(scale, updates)
      return out, optax.ScaleByScheduleState(count=optax.safe_increment(state.count))
    return optax.GradientTransformation(
        lambda _: optax.ScaleByScheduleState(count=jnp.zeros([], jnp.int32)), update)

  if clip_scope not in CLIP_SCOPES:
    raise ValueError(f"config.clip_scope: expected one of {CLIP_SCOPES}, got {clip_scope!r}")
  return optax.chain(
      clip_by_module_norm(clip) if clip_scope == "module" else optax.clip_by_global_norm(clip),
      optax.scale_by_adam(b1=b1, b2=b2),
      optax.add_decayed_weights(weight_decay, mask=decay_mask),
      scale_groups(),
      optax.scale_by_learning_rate(learning_rate),
  )
