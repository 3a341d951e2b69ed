"""Numerical parity with PyTorch: ViT_12 against transformers' Dinov2Model, and MV_Hybrid's mixer,
EinFFT and a whole tiny MV_Hybrid against a PyTorch implementation written here from the spec
(section 1), with the release's semantics (F.conv1d padding="same", torch.fft.fft2, a loop scan)
and key names. Weights go PyTorch -> import_state_dict; outputs must agree to 1e-4 in float32."""

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from mvhybrid_jax import interop
from mvhybrid_jax.models import pos_embed

torch.manual_seed(0)


def perturb(module, scale=0.05):
  """Every parameter moved off its (often structured) init, so each one matters."""
  g = torch.Generator().manual_seed(1)
  with torch.no_grad():
    for p in module.parameters():
      p.add_(scale * torch.randn(p.shape, generator=g))
  return module


def sd_numpy(module):
  return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}


# ---- ViT_12 against Hugging Face's Dinov2Model -------------------------------------------------


def hf_to_dinov2(sd):
  """Dinov2Model's names -> DINOv2's, written here independently of interop's own mapping."""
  out = {"cls_token": sd["embeddings.cls_token"], "mask_token": sd["embeddings.mask_token"],
         "pos_embed": sd["embeddings.position_embeddings"],
         "patch_embed.proj.weight": sd["embeddings.patch_embeddings.projection.weight"],
         "patch_embed.proj.bias": sd["embeddings.patch_embeddings.projection.bias"],
         "norm.weight": sd["layernorm.weight"], "norm.bias": sd["layernorm.bias"]}
  for i in range(12):
    h, d = f"encoder.layer.{i}.", f"blocks.{i}."
    for kind in ("weight", "bias"):  # transformers 5's names in memory
      out[d + f"attn.qkv.{kind}"] = np.concatenate(
          [sd[h + f"attention.{n}_proj.{kind}"] for n in ("q", "k", "v")])
      out[d + f"attn.proj.{kind}"] = sd[h + f"attention.o_proj.{kind}"]
      for n in ("norm1", "norm2", "mlp.fc1", "mlp.fc2"):
        out[d + f"{n}.{kind}"] = sd[h + f"{n}.{kind}"]
    out[d + "ls1.gamma"] = sd[h + "layer_scale1.lambda1"]
    out[d + "ls2.gamma"] = sd[h + "layer_scale2.lambda1"]
  return out


@pytest.fixture(scope="module")
def hf_vit():
  import transformers
  config = transformers.Dinov2Config(
      hidden_size=384, num_hidden_layers=12, num_attention_heads=6, mlp_ratio=4, patch_size=16,
      image_size=256, layerscale_value=1e-5, layer_norm_eps=1e-6, hidden_act="gelu",
      use_swiglu_ffn=False, drop_path_rate=0.0)
  model = transformers.Dinov2Model(config).eval()
  with torch.no_grad():  # layer-scale from 1e-5 to O(1), so every block shows in the output
    for name, p in model.named_parameters():
      if "lambda1" in name:
        p.copy_(0.5 + torch.rand(p.shape))
  return perturb(model, 0.02)


def hf_tokens(model, images):
  with torch.no_grad():
    out = model(pixel_values=torch.from_numpy(images).permute(0, 3, 1, 2)).last_hidden_state
  return out.numpy()


@pytest.mark.parametrize("side", [256, 112])
def test_vit_12_matches_dinov2model(hf_vit, side):
  """At 256 px the positional embedding is used as is: max |difference| <= 1e-4. At 112 px it
  is resized from 16x16 to 7x7: Dinov2Model (transformers 5) resizes to the target size, which is
  interpolate_offset=0.0 here; DINOv2 itself uses scale factors (7 + 0.1) / 16, our default."""
  sd = hf_to_dinov2(sd_numpy(hf_vit))
  images = np.random.default_rng(side).standard_normal((2, side, side, 3)).astype(np.float32)
  want = hf_tokens(hf_vit, images)
  ours = interop.import_state_dict("vit_12", sd, interpolate_offset=0.0)
  out = ours(images)
  np.testing.assert_allclose(np.asarray(out["x_norm_clstoken"]), want[:, 0], atol=1e-4, rtol=0)
  np.testing.assert_allclose(np.asarray(out["x_norm_patchtokens"]), want[:, 1:], atol=1e-4,
                             rtol=0)
  # interop's own Hugging Face reader gives the same model.
  direct = interop.import_state_dict("vit_12", sd_numpy(hf_vit), interpolate_offset=0.0)
  np.testing.assert_array_equal(np.asarray(direct(images)["x_norm_clstoken"]),
                                np.asarray(out["x_norm_clstoken"]))
  dinov2 = interop.import_state_dict("vit_12", sd)(images)["x_norm_patchtokens"]
  gap = float(np.abs(np.asarray(dinov2) - want[:, 1:]).max())
  if side == 256:
    assert gap <= 1e-4  # no resizing: the offset plays no part
  else:
    assert gap > 1e-3  # a real, if small, difference between the two resizings


def test_positional_resize_is_dinov2s():
  """pos_embed.interpolate with offset 0.1 is DINOv2's F.interpolate(scale_factor=(g + 0.1) / M,
  bicubic, align_corners=False) and with offset 0.0 Dinov2Model's F.interpolate(size=g)."""
  pe = np.random.default_rng(0).standard_normal((1, 1 + 16 * 16, 8)).astype(np.float32)
  grid = torch.from_numpy(pe[:, 1:]).reshape(1, 16, 16, 8).permute(0, 3, 1, 2)
  for g_h, g_w in ((7, 7), (5, 9), (20, 24)):
    ours = np.asarray(pos_embed.interpolate(pe, g_h, g_w, 0.1))[0, 1:]
    want = F.interpolate(grid, scale_factor=((g_h + 0.1) / 16, (g_w + 0.1) / 16), mode="bicubic",
                         align_corners=False)
    np.testing.assert_allclose(ours, want.permute(0, 2, 3, 1).reshape(-1, 8).numpy(), atol=1e-5)
    ours = np.asarray(pos_embed.interpolate(pe, g_h, g_w, 0.0))[0, 1:]
    want = F.interpolate(grid, size=(g_h, g_w), mode="bicubic", align_corners=False)
    np.testing.assert_allclose(ours, want.permute(0, 2, 3, 1).reshape(-1, 8).numpy(), atol=1e-5)


# ---- MV_Hybrid against a PyTorch implementation of the release's semantics --------------------


class Mixer(nn.Module):
  """MambaVisionMixer, spec section 1: non-causal depthwise convs, symmetric z branch, the dt bias
  applied twice, a loop over tokens for the selective scan."""

  def __init__(self, d_model, d_state=16, d_conv=4, expand=2):
    super().__init__()
    half = expand * d_model // 2
    self.dt_rank, self.d_state = math.ceil(d_model / 16), d_state
    self.in_proj = nn.Linear(d_model, 2 * half, bias=False)
    self.x_proj = nn.Linear(half, self.dt_rank + 2 * d_state, bias=False)
    self.dt_proj = nn.Linear(self.dt_rank, half, bias=True)
    self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1.0)).repeat(half, 1))
    self.D = nn.Parameter(torch.ones(half))
    self.out_proj = nn.Linear(2 * half, d_model, bias=False)
    self.conv1d_x = nn.Conv1d(half, half, d_conv, groups=half, bias=False, padding="same")
    self.conv1d_z = nn.Conv1d(half, half, d_conv, groups=half, bias=False, padding="same")

  def forward(self, hidden):  # (B, L, d_model)
    x, z = self.in_proj(hidden).transpose(1, 2).chunk(2, dim=1)  # (B, half, L) each
    x, z = F.silu(self.conv1d_x(x)), F.silu(self.conv1d_z(z))
    dt, b, c = self.x_proj(x.transpose(1, 2)).split([self.dt_rank, self.d_state, self.d_state],
                                                    dim=-1)
    delta = F.softplus(self.dt_proj(dt) + self.dt_proj.bias)  # (B, L, half)
    a = -torch.exp(self.A_log)  # (half, N)
    h = torch.zeros(x.shape[0], x.shape[1], self.d_state)
    ys = []
    for t in range(x.shape[2]):
      d_t = delta[:, t, :, None]
      h = torch.exp(d_t * a) * h + d_t * b[:, t, None, :] * x[:, :, t, None]
      ys.append((h * c[:, t, None, :]).sum(-1) + self.D * x[:, :, t])
    y = torch.stack(ys, dim=1)  # (B, L, half)
    return self.out_proj(torch.cat([y, z.transpose(1, 2)], dim=-1))


class EinFFT(nn.Module):
  def __init__(self, dim, num_blocks=4):
    super().__init__()
    d, self.num_blocks = dim // num_blocks, num_blocks
    self.complex_weight_1 = nn.Parameter(0.02 * torch.randn(2, num_blocks, d, d))
    self.complex_weight_2 = nn.Parameter(0.02 * torch.randn(2, num_blocks, d, d))
    self.complex_bias_1 = nn.Parameter(0.02 * torch.randn(2, num_blocks, d))
    self.complex_bias_2 = nn.Parameter(0.02 * torch.randn(2, num_blocks, d))

  def forward(self, x):
    b, m, dim = x.shape
    h = torch.fft.fft2(x.reshape(b, m, self.num_blocks, -1).float(), dim=(1, 2), norm="ortho")

    def layer(h, w, bias):
      w, bias = torch.complex(w[0], w[1]), torch.complex(bias[0], bias[1])
      return torch.einsum("bmki,kio->bmko", h, w) + bias

    h = layer(h, self.complex_weight_1, self.complex_bias_1)
    h = torch.complex(F.relu(h.real), F.relu(h.imag))
    h = layer(h, self.complex_weight_2, self.complex_bias_2)
    h = torch.complex(F.softshrink(h.real, 0.01), F.softshrink(h.imag, 0.01))
    return torch.fft.ifft2(h, dim=(1, 2), norm="ortho").real.reshape(b, m, dim)


class Attention(nn.Module):
  def __init__(self, dim, heads):
    super().__init__()
    self.heads = heads
    self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

  def forward(self, x):
    b, n, d = x.shape
    q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
    att = (q @ k.transpose(-2, -1) / math.sqrt(d // self.heads)).softmax(-1)
    return self.proj((att @ v).transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
  def __init__(self, dim):
    super().__init__()
    self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

  def forward(self, x):
    return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
  def __init__(self, dim, heads, mamba):
    super().__init__()
    self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-5), nn.LayerNorm(dim, eps=1e-5)
    self.mixer = Mixer(dim) if mamba else Attention(dim, heads)
    self.channel_mixer = EinFFT(dim) if mamba else Mlp(dim)

  def forward(self, x):
    x = x + self.mixer(self.norm1(x))
    return x + self.channel_mixer(self.norm2(x))


class MVHybrid(nn.Module):
  """Patch embedding, CLS inserted at n // 2 (no positional embedding), mixer blocks then
  attention blocks, final norm; the release's key names."""

  def __init__(self, dim=64, depth=4, heads=2):
    super().__init__()
    self.patch_embed = nn.Module()
    self.patch_embed.proj = nn.Conv2d(3, dim, 16, 16)
    self.cls_token = nn.Parameter(0.02 * torch.randn(1, 1, dim))
    self.mask_token = nn.Parameter(torch.zeros(1, dim))
    self.blocks = nn.Module()
    self.blocks.blocks = nn.ModuleList(
        [Block(dim, heads, i < math.ceil(depth / 2)) for i in range(depth)])
    self.norm = nn.LayerNorm(dim, eps=1e-5)

  def forward(self, images):  # (B, H, W, 3)
    x = self.patch_embed.proj(images.permute(0, 3, 1, 2)).flatten(2).transpose(1, 2)
    at = x.shape[1] // 2
    x = torch.cat([x[:, :at], self.cls_token.expand(x.shape[0], -1, -1), x[:, at:]], dim=1)
    for block in self.blocks.blocks:
      x = block(x)
    x = self.norm(x)
    return x[:, at], torch.cat([x[:, :at], x[:, at + 1:]], dim=1)


@pytest.fixture(scope="module")
def torch_mvhybrid():
  return perturb(MVHybrid()).eval()


def test_mixer_and_einfft_match(torch_mvhybrid):
  ours = interop.import_state_dict("mvhybrid", sd_numpy(torch_mvhybrid), num_heads=2,
                                   scan_impl="reference")
  x = np.random.default_rng(0).standard_normal((2, 17, 64)).astype(np.float32)
  block_t, block_j = torch_mvhybrid.blocks.blocks[0], ours.blocks[0]
  with torch.no_grad():
    want_mixer = block_t.mixer(torch.from_numpy(x)).numpy()
    want_fft = block_t.channel_mixer(torch.from_numpy(x)).numpy()
  np.testing.assert_allclose(np.asarray(block_j.mixer(x)), want_mixer, atol=1e-4, rtol=0)
  np.testing.assert_allclose(np.asarray(block_j.channel_mixer(x)), want_fft, atol=1e-4, rtol=0)
  assert np.abs(want_mixer).max() > 1e-2 and np.abs(want_fft).max() > 1e-3  # not trivially 0


@pytest.mark.parametrize("side", [64, 112])
def test_whole_mvhybrid_matches(torch_mvhybrid, side):
  ours = interop.import_state_dict("mvhybrid", sd_numpy(torch_mvhybrid), num_heads=2)
  images = np.random.default_rng(side).standard_normal((2, side, side, 3)).astype(np.float32)
  with torch.no_grad():
    cls, patches = (t.numpy() for t in torch_mvhybrid(torch.from_numpy(images)))
  out = ours(images)
  np.testing.assert_allclose(np.asarray(out["x_norm_clstoken"]), cls, atol=1e-4, rtol=0)
  np.testing.assert_allclose(np.asarray(out["x_norm_patchtokens"]), patches, atol=1e-4, rtol=0)
