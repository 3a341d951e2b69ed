"""The backbones, by name.

    from mvhybrid_jax import models
    model = models.create("mvhybrid", rngs=nnx.Rngs(0), depth=4, dim=64)  # any size overridable
    out = model(images)            # x_norm_clstoken (batch, dim), x_norm_patchtokens (batch, n, dim)
    emb = model.embed(images)      # (batch, 2 * dim)
"""

from __future__ import annotations

import dataclasses
import inspect
import math

import jax
import jax.numpy as jnp
from flax import nnx

from mvhybrid_jax.models.backbone import AttentionSettings, Backbone, SSMSettings


def mvhybrid_layout(depth: int) -> tuple[str, ...]:
  """MambaVisionMixer blocks first, attention blocks from ceil(depth / 2) (the release's split:
  range(depth // 2 + 1, depth) for odd depth)."""
  return ("mamba",) * math.ceil(depth / 2) + ("attention",) * (depth // 2)


def vit_layout(depth: int) -> tuple[str, ...]:
  return ("attention",) * depth


def vim_layout(depth: int) -> tuple[str, ...]:
  return ("vim",) * depth


def hydra_layout(depth: int) -> tuple[str, ...]:
  return ("hydra",) * depth


def hydra_hybrid_layout(depth: int) -> tuple[str, ...]:
  """Hydra blocks first, attention from ceil(depth / 2), as MV_Hybrid splits."""
  return ("hydra",) * math.ceil(depth / 2) + ("attention",) * (depth // 2)


# DINOv2 ViT-S/16 (spec section 2).
_DINOV2 = dict(cls_position="first", pos_embed_grid=16, layer_scale=1e-5, norm_eps=1e-6,
               drop_path_rate=0.3, cls_init_std=1e-6)
# name -> (layout from depth, default settings); spec sections 1 and 2.
_REGISTRY = {
    "mvhybrid": (mvhybrid_layout, dict(depth=24, cls_position="middle", norm_eps=1e-5)),
    "vit_12": (vit_layout, dict(depth=12, **_DINOV2)),
    "vit_24": (vit_layout, dict(depth=24, **_DINOV2)),
    # Sized to MV_Hybrid's budget (dim 384, depth 24, middle CLS, no positional embedding):
    # spec section 2 gives no code or config for these; docs/backbones.md has the choices.
    "vim_einfft": (vim_layout, dict(depth=24, cls_position="middle", norm_eps=1e-5)),
    "hydra_einfft": (hydra_layout, dict(depth=24, cls_position="middle", norm_eps=1e-5,
                                        d_state=64, d_conv=7)),
    "hydra_hybrid": (hydra_hybrid_layout, dict(depth=24, cls_position="middle", norm_eps=1e-5,
                                               d_state=64, d_conv=7)),
}
# The mixers' settings, typed in Backbone and flat in settings dicts (configs, checkpoints).
_MIXER_SETTINGS = {"ssm": SSMSettings, "attention": AttentionSettings}
_BACKBONE_DEFAULTS = {**{k: p.default
                         for k, p in inspect.signature(Backbone.__init__).parameters.items()
                         if k not in ("self", "layout", "rngs", *_MIXER_SETTINGS)},
                      **{k: v for cls in _MIXER_SETTINGS.values()
                         for k, v in dataclasses.asdict(cls()).items()}}
_SETTINGS = {"depth"} | set(_BACKBONE_DEFAULTS)


def names() -> list[str]:
  return sorted(_REGISTRY)


def settings(name: str, **overrides) -> dict:
  """A backbone's full settings, {"name": name, "depth": ..., "dim": ..., ...}: Backbone's
  defaults, then the registry's for name, then the overrides. Two settings dicts build the same
  network when these agree."""
  if name not in _REGISTRY:
    raise ValueError(f"name: unknown backbone {name!r}; expected one of {names()}")
  unknown = sorted(set(overrides) - _SETTINGS)
  if unknown:
    raise ValueError(f"overrides: unknown {unknown} for {name!r}; expected some of "
                     f"{sorted(_SETTINGS)}")
  return {"name": name, **_BACKBONE_DEFAULTS, **_REGISTRY[name][1], **overrides}


def given(model) -> dict:
  """The settings a `model` dict sets: its entries that are not None."""
  return {k: v for k, v in dict(model).items() if v is not None}


def resolve(model) -> dict:
  """The full settings of a `model` dict as configs, checkpoints and exports hold it: {"name":
  ..., setting: value}, where None leaves a setting to the registry (so configs need not repeat
  a backbone's sizes)."""
  return settings(**given(model))


def from_settings(model, *, rngs: nnx.Rngs) -> Backbone:
  """The backbone of a `model` dict (config, checkpoint or export; None: the registry's)."""
  overrides = given(model)
  return create(overrides.pop("name"), rngs=rngs, **overrides)


def create(name: str, *, rngs: nnx.Rngs, **overrides) -> Backbone:
  """Builds a registered backbone; overrides replace any default (depth, dim, num_heads, ...)."""
  resolved = settings(name, **overrides)
  del resolved["name"]
  depth = resolved.pop("depth")
  if "dtype" in overrides:  # a name ("bfloat16") from a config, or a dtype
    resolved["dtype"] = jnp.dtype(resolved["dtype"])
  typed = {arg: cls(**{f.name: resolved.pop(f.name) for f in dataclasses.fields(cls)})
           for arg, cls in _MIXER_SETTINGS.items()}
  return Backbone(layout=_REGISTRY[name][0](depth), rngs=rngs, **typed, **resolved)


def count_params(model: nnx.Module) -> int:
  return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
