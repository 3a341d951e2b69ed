"""One backbone for every model: patch embedding, token layout, a list of blocks, final norm.

A block is (token mixer, channel mixer) in a pre-norm residual: MV_Hybrid's first half is
MambaVisionMixer + EinFFT, its second half and the ViTs are attention + MLP; ViM_EinFFT's blocks
are Vision Mamba + EinFFT, Hydra's are the Hydra mixer + EinFFT. What differs between
the registered models is only this layout and the token arrangement (CLS in the middle with no
positional embedding for MV_Hybrid, CLS first with a learned one for ViT).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from mvhybrid_jax.models import init, pos_embed
from mvhybrid_jax.models.attention import Attention, Mlp
from mvhybrid_jax.models.einfft import EinFFT
from mvhybrid_jax.models.hydra import HydraMixer
from mvhybrid_jax.models.mamba_vision import MambaVisionMixer
from mvhybrid_jax.models.vim import VimMixer

MIXERS = ("mamba", "vim", "hydra", "attention")
EMBEDDINGS = ("cls", "mean", "cls+mean")  # what `Backbone.embed` returns


@dataclasses.dataclass(frozen=True)
class SSMSettings:
  """The state space mixers' settings (MambaVision, ViM, Hydra), apart from attention's."""
  d_state: int = 16
  d_conv: int = 4
  expand: int = 2
  a_init: str = "s4d_real"       # MambaVision, ViM: the eigenvalue initialisation
  scan_impl: str = "auto"        # MambaVision, ViM: kernels.selective_scan's impl
  release_quirks: bool = True    # MambaVision: the released model's dt bias and z gate
  bidirectional: bool = True     # ViM, Hydra
  head_dim: int = 64             # Hydra
  chunk_size: int = 64           # Hydra: the SSD scan's chunk


@dataclasses.dataclass(frozen=True)
class AttentionSettings:
  num_heads: int = 6
  mlp_ratio: float = 4.0


def mixers(kind: str, dim: int, ssm: SSMSettings, attention: AttentionSettings, dtype):
  """(token mixer, channel mixer) constructors of a block kind, each rngs -> module."""
  s = ssm
  token = {
      "mamba": lambda rngs: MambaVisionMixer(
          dim, d_state=s.d_state, d_conv=s.d_conv, expand=s.expand, a_init=s.a_init,
          scan_impl=s.scan_impl, release_quirks=s.release_quirks, dtype=dtype, rngs=rngs),
      "vim": lambda rngs: VimMixer(
          dim, d_state=s.d_state, d_conv=s.d_conv, expand=s.expand, a_init=s.a_init,
          scan_impl=s.scan_impl, bidirectional=s.bidirectional, dtype=dtype, rngs=rngs),
      "hydra": lambda rngs: HydraMixer(
          dim, d_state=s.d_state, d_conv=s.d_conv, expand=s.expand, head_dim=s.head_dim,
          chunk_size=s.chunk_size, bidirectional=s.bidirectional, dtype=dtype, rngs=rngs),
      "attention": lambda rngs: Attention(dim, num_heads=attention.num_heads, dtype=dtype,
                                          rngs=rngs),
  }[kind]
  if kind == "attention":
    return token, lambda rngs: Mlp(dim, int(dim * attention.mlp_ratio), dtype=dtype, rngs=rngs)
  return token, lambda rngs: EinFFT(dim, rngs=rngs)


class LayerScale(nnx.Module):
  def __init__(self, dim: int, value: float):
    self.gamma = nnx.Param(jnp.full((dim,), value, jnp.float32))

  def __call__(self, x):
    return x * self.gamma[...].astype(x.dtype)


class Block(nnx.Module):
  """x = x + drop_path(ls1(mixer(norm1(x)))); x = x + drop_path(ls2(channel_mixer(norm2(x)))).

  mixer and channel_mixer: constructors (rngs -> module), as `mixers` makes them."""

  def __init__(self, dim: int, mixer, channel_mixer, *, norm_eps: float,
               layer_scale: float | None, drop_path: float, dtype, rngs: nnx.Rngs):
    norm = lambda: nnx.LayerNorm(dim, epsilon=norm_eps, dtype=dtype, rngs=rngs)
    self.norm1, self.norm2 = norm(), norm()
    self.mixer, self.channel_mixer = mixer(rngs), channel_mixer(rngs)
    self.ls1 = LayerScale(dim, layer_scale) if layer_scale else None
    self.ls2 = LayerScale(dim, layer_scale) if layer_scale else None
    # Stochastic depth: one keep/drop draw per sample, active only in train mode.
    self.drop_path = nnx.Dropout(drop_path, broadcast_dims=(1, 2), rngs=rngs)

  def __call__(self, x):
    y = self.mixer(self.norm1(x))
    x = x + self.drop_path(self.ls1(y) if self.ls1 else y)
    y = self.channel_mixer(self.norm2(x))
    return x + self.drop_path(self.ls2(y) if self.ls2 else y)


class Backbone(nnx.Module):
  """Images (batch, H, W, channels), normalised -> normed CLS and patch tokens."""

  def __init__(self, *, layout: tuple[str, ...], ssm: SSMSettings = SSMSettings(),
               attention: AttentionSettings = AttentionSettings(), dim: int = 384,
               patch_size: int = 16, in_chans: int = 3, cls_position: str = "middle",
               pos_embed_grid: int | None = None, interpolate_offset: float = 0.1,
               num_registers: int = 0, layer_scale: float | None = None,
               cls_init_std: float = 0.02, norm_eps: float = 1e-5, drop_path_rate: float = 0.0,
               remat: bool = False, dtype=jnp.float32, rngs: nnx.Rngs):
    """layout: one block kind per block (MIXERS); ssm and attention: the mixers' settings; the
    rest: the embedding, norms and residual stream, shared by every kind."""
    bad = [k for k in layout if k not in MIXERS]
    if bad or not layout:
      raise ValueError(f"layout: expected a non-empty sequence of {MIXERS}, got {layout}")
    if cls_position not in ("middle", "first"):
      raise ValueError(f"cls_position: expected 'middle' or 'first', got {cls_position!r}")
    self.dim, self.patch_size, self.in_chans = dim, patch_size, in_chans
    self.cls_position, self.num_registers, self.remat = cls_position, num_registers, remat
    # 0.1: DINOv2's scale factors (grid + 0.1) / M; 0.0: transformers' Dinov2Model (v5), which
    # resizes to the grid size (tests/interop/test_parity.py: 5e-6 against Dinov2Model).
    self.interpolate_offset = interpolate_offset
    self.patch_embed = nnx.Conv(in_chans, dim, kernel_size=(patch_size, patch_size),
                                strides=(patch_size, patch_size), padding="VALID", dtype=dtype,
                                kernel_init=init.torch_default,
                                bias_init=init.torch_default_bias(in_chans * patch_size ** 2),
                                rngs=rngs)
    self.cls_token = nnx.Param(cls_init_std * jax.random.normal(rngs.params(), (1, 1, dim)))
    self.mask_token = nnx.Param(jnp.zeros((1, dim), jnp.float32))
    self.pos_embed = (nnx.Param(init.trunc_normal(rngs.params(), (1, 1 + pos_embed_grid ** 2, dim)))
                      if pos_embed_grid else None)
    self.register_tokens = (nnx.Param(1e-6 * jax.random.normal(rngs.params(),
                                                               (1, num_registers, dim)))
                            if num_registers else None)
    depth = len(layout)
    rates = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]  # linear 0..rate
    self.blocks = nnx.List([
        Block(dim, *mixers(kind, dim, ssm, attention, dtype), norm_eps=norm_eps,
              layer_scale=layer_scale, drop_path=rate, dtype=dtype, rngs=rngs)
        for kind, rate in zip(layout, rates)])
    self.norm = nnx.LayerNorm(dim, epsilon=norm_eps, dtype=dtype, rngs=rngs)

  def _check(self, images, masks):
    if images.ndim != 4 or images.shape[-1] != self.in_chans:
      raise ValueError(f"images: expected (batch, H, W, {self.in_chans}), got {images.shape}")
    h, w = images.shape[1:3]
    if h % self.patch_size or w % self.patch_size:
      raise ValueError(f"images: H and W must be multiples of the patch size {self.patch_size}, "
                       f"got {h}x{w}")
    n = (h // self.patch_size) * (w // self.patch_size)
    if masks is not None and (masks.shape != (images.shape[0], n) or masks.dtype != jnp.bool_):
      raise ValueError(f"masks: expected bool of shape (batch, n_patches) = "
                       f"({images.shape[0]}, {n}), got {masks.dtype} {masks.shape}")

  def cls_index(self, n_patches: int) -> int:
    """Where the CLS token sits among the tokens (before registers are counted)."""
    return n_patches // 2 if self.cls_position == "middle" else 0

  def tokens(self, images, masks=None):
    """The block input: patch embeddings (masked ones replaced by the mask token), CLS inserted,
    positional embedding added, registers after the CLS. (batch, n + 1 + registers, dim)."""
    self._check(images, masks)
    batch = images.shape[0]
    x = self.patch_embed(images)  # (batch, H/p, W/p, dim)
    grid_h, grid_w = x.shape[1:3]
    x = x.reshape(batch, grid_h * grid_w, self.dim)
    n = x.shape[1]
    if masks is not None:
      x = jnp.where(masks[..., None], self.mask_token[...].astype(x.dtype), x)
    cls = jnp.broadcast_to(self.cls_token[...].astype(x.dtype), (batch, 1, self.dim))
    at = self.cls_index(n)
    x = jnp.concatenate([x[:, :at], cls, x[:, at:]], axis=1)  # (batch, n + 1, dim)
    if self.pos_embed is not None:
      x = x + pos_embed.interpolate(self.pos_embed[...], grid_h, grid_w,
                                    self.interpolate_offset).astype(x.dtype)
    if self.register_tokens is not None:  # after the CLS token, as in DINOv2
      reg = jnp.broadcast_to(self.register_tokens[...].astype(x.dtype),
                             (batch, self.num_registers, self.dim))
      x = jnp.concatenate([x[:, :at + 1], reg, x[:, at + 1:]], axis=1)
    return x

  def hidden_states(self, images, masks=None) -> list[jax.Array]:
    """The residual stream before the first block and after each block, unnormed:
    depth + 1 arrays of (batch, tokens, dim), tokens laid out as in `tokens`."""
    x = self.tokens(images, masks)
    out = [x]
    for block in self.blocks:
      x = nnx.remat(lambda blk, x: blk(x))(block, x) if self.remat else block(x)
      out.append(x)
    return out

  def patch_grid(self, x, grid_h: int, grid_w: int):
    """Tokens (batch, tokens, dim) -> patch tokens on their grid (batch, grid_h, grid_w, dim):
    the CLS token and registers taken out."""
    at, extra = self.cls_index(grid_h * grid_w), 1 + self.num_registers
    patches = jnp.concatenate([x[:, :at], x[:, at + extra:]], axis=1)
    return patches.reshape(x.shape[0], grid_h, grid_w, x.shape[-1])

  def __call__(self, images, masks=None):
    at = self.cls_index((images.shape[1] // self.patch_size) * (images.shape[2] // self.patch_size))
    x = self.norm(self.hidden_states(images, masks)[-1])
    extra = 1 + self.num_registers  # CLS and registers, contiguous from `at`
    return {
        "x_norm_clstoken": x[:, at],
        "x_norm_regtokens": x[:, at + 1:at + extra],
        "x_norm_patchtokens": jnp.concatenate([x[:, :at], x[:, at + extra:]], axis=1),
        "masks": masks,
    }

  def embed(self, images, embedding: str = "cls+mean"):
    """An image embedding (EMBEDDINGS): the normed CLS token (batch, dim), the mean of the patch
    tokens (batch, dim), or their concat (batch, 2 * dim), the inference embedding."""
    if embedding not in EMBEDDINGS:
      raise ValueError(f"embedding: expected one of {EMBEDDINGS}, got {embedding!r}")
    out = self(images)
    cls, mean = out["x_norm_clstoken"], out["x_norm_patchtokens"].mean(axis=1)
    if embedding == "cls+mean":
      return jnp.concatenate([cls, mean], axis=-1)
    return cls if embedding == "cls" else mean
