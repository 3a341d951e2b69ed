"""Our backbones <-> PyTorch state dicts, in the release's (MV_Hybrid) and DINOv2's (ViT) key names
and layouts (spec sections 1 and 2).

A parameter path maps to a PyTorch key by a few rules: "/" becomes ".", LayerNorm "scale" and
every "kernel" become "weight", the patch embedding sits under "patch_embed.proj", and blocks are
"blocks.blocks.{i}" with "mixer" / "channel_mixer" in the release, "blocks.{i}" with "attn" / "mlp"
in DINOv2. Kernels change layout: Linear (in, out) <-> (out, in), Conv2d (kh, kw, in, out) <->
(out, in, kh, kw), depthwise Conv1d (k, 1, C) <-> (C, 1, k). A backbone with a positional
embedding (the ViTs) uses DINOv2's names, one without (MV_Hybrid) the release's.

Checkpoints are unwrapped before mapping: {"model"|"state_dict": ...} and {"teacher": ...}
containers, "module." and "encoder." prefixes, a DINOv2 training checkpoint's "teacher." /
"student." halves and "backbone." part (the heads are dropped), and Hugging Face's Dinov2Model
names ("embeddings.", "encoder.layer.{i}.", separate query/key/value), which are moved into
DINOv2's layout.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import jax
import numpy as np
from flax import nnx

from mvhybrid_jax import models

SKIP_PREFIXES = ("module.", "encoder.")


def _style(model) -> str:
  return "dinov2" if getattr(model, "pos_embed", None) is not None else "release"


def torch_key(names: list[str], style: str) -> str:
  """Our parameter path (a list of names) -> its PyTorch key."""
  out = []
  for i, n in enumerate(names):
    if n == "blocks":
      out.append("blocks" if style == "dinov2" else "blocks.blocks")
    elif n == "patch_embed":
      out.append("patch_embed.proj")
    elif style == "dinov2" and names[i - 1:i] and names[i - 1].isdigit() and n in (
        "mixer", "channel_mixer"):
      out.append("attn" if n == "mixer" else "mlp")
    elif i == len(names) - 1 and n in ("scale", "kernel"):
      out.append("weight")
    else:
      out.append(n)
  return ".".join(out)


# Axis orders of kernels, by rank: ours -> PyTorch (the inverse goes back).
TO_TORCH = {2: (1, 0), 3: (2, 1, 0), 4: (3, 2, 0, 1)}


def _axes(names: list[str], ndim: int):
  return TO_TORCH[ndim] if names[-1] == "kernel" else tuple(range(ndim))


def to_torch(x: np.ndarray, names: list[str]) -> np.ndarray:
  return np.ascontiguousarray(np.transpose(x, _axes(names, x.ndim)))


def from_torch(x: np.ndarray, names: list[str]) -> np.ndarray:
  return np.transpose(x, np.argsort(_axes(names, x.ndim)))


def torch_shape(shape: tuple, names: list[str]) -> tuple:
  return tuple(shape[a] for a in _axes(names, len(shape)))


def _params(model) -> list[tuple[list[str], np.ndarray]]:
  """(names, value) of every parameter, in the model's order."""
  flat = jax.tree_util.tree_flatten_with_path(nnx.to_pure_dict(nnx.state(model, nnx.Param)))[0]
  return [([str(getattr(k, "key", k)) for k in path], np.asarray(x)) for path, x in flat]


def export_state_dict(model) -> dict[str, np.ndarray]:
  """The backbone's parameters under the release's (or DINOv2's) key names, PyTorch layouts."""
  style = _style(model)
  return {torch_key(names, style): to_torch(x, names) for names, x in _params(model)}


def _strip(sd: dict) -> dict:
  """Without leading "module." / "encoder." (but Hugging Face's own "encoder.layer." stays)."""
  out = {}
  for k, v in sd.items():
    while k.startswith(SKIP_PREFIXES) and not k.startswith("encoder.layer."):
      k = k.split(".", 1)[1]
    out[k] = v
  return out


def _select(sd: dict, prefix: str) -> dict:
  return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def _from_hf_dinov2(sd: dict) -> dict:
  """Hugging Face Dinov2Model names (transformers 4 and 5) -> DINOv2's (query, key and value
  concatenated into qkv)."""
  out = {}
  renames = [(r"^embeddings\.cls_token$", "cls_token"),
             (r"^embeddings\.mask_token$", "mask_token"),
             (r"^embeddings\.position_embeddings$", "pos_embed"),
             (r"^embeddings\.register_tokens$", "register_tokens"),
             (r"^embeddings\.patch_embeddings\.projection\.", "patch_embed.proj."),
             (r"^encoder\.layer\.(\d+)\.attention\.(output\.dense|o_proj)\.",
              r"blocks.\1.attn.proj."),
             (r"^encoder\.layer\.(\d+)\.layer_scale(\d)\.lambda1$", r"blocks.\1.ls\2.gamma"),
             (r"^encoder\.layer\.(\d+)\.(norm\d|mlp)\.", r"blocks.\1.\2."),
             (r"^layernorm\.", "norm.")]
  qkv = {}
  for k, v in sd.items():
    # transformers 4 (and checkpoints on the Hub): attention.attention.{query,key,value};
    # transformers 5 in memory: attention.{q,k,v}_proj.
    m = re.match(r"^encoder\.layer\.(\d+)\.attention\.(?:attention\.(query|key|value)|"
                 r"(q|k|v)_proj)\.(weight|bias)$", k)
    if m:
      part = m[2] or {"q": "query", "k": "key", "v": "value"}[m[3]]
      qkv.setdefault((m[1], m[4]), {})[part] = v
      continue
    for pattern, repl in renames:
      if re.match(pattern, k):
        out[re.sub(pattern, repl, k)] = v
        break
    else:
      out[k] = v  # left as is: reported as unknown if it is not a DINOv2 key
  for (layer, kind), parts in qkv.items():
    if set(parts) != {"query", "key", "value"}:
      raise ValueError(f"encoder.layer.{layer}.attention: expected query, key and value {kind}s, "
                       f"got {sorted(parts)}")
    out[f"blocks.{layer}.attn.qkv.{kind}"] = np.concatenate(
        [parts["query"], parts["key"], parts["value"]], axis=0)
  return out


def backbone_state_dict(checkpoint: Mapping, which: str = "teacher") -> dict[str, np.ndarray]:
  """The backbone's flat state dict (DINOv2 or release key names) out of any of the supported
  checkpoint forms; which picks the teacher or the student of a training checkpoint."""
  obj = checkpoint
  for key in ("model", "state_dict"):
    if isinstance(obj.get(key), Mapping):
      obj = obj[key]
  if isinstance(obj.get(which), Mapping):  # DINOv2's teacher_checkpoint.pth: {"teacher": ...}
    obj = obj[which]
  sd = _strip({k: v for k, v in obj.items() if not isinstance(v, Mapping)})
  halves = {k.split(".", 1)[0] for k in sd if k.startswith(("teacher.", "student."))}
  if halves:
    if which not in halves:
      raise ValueError(f"checkpoint: it holds {sorted(halves)}, not {which!r}")
    sd = _strip(_select(sd, which + "."))
  if any(k.startswith("backbone.") for k in sd):
    sd = _strip(_select(sd, "backbone."))
  if any(k.startswith("dinov2.") for k in sd):
    sd = _select(sd, "dinov2.")
  if "embeddings.cls_token" in sd:
    sd = _from_hf_dinov2(sd)
  return {k: np.asarray(v) for k, v in sd.items()}


def infer_settings(name: str, sd: Mapping) -> dict:
  """Sizes read off a state dict (dim, depth, patch size, heads at 64 per head, d_state, the
  positional grid, registers, MLP ratio, layer-scale), so that any width or depth imports."""
  if "patch_embed.proj.weight" not in sd:
    raise ValueError("state_dict: expected a backbone with patch_embed.proj.weight; got keys "
                     f"{sorted(sd)[:8]}...")
  weight = np.shape(sd["patch_embed.proj.weight"])
  dim = weight[0]
  blocks = {int(m[1]) for k in sd if (m := re.match(r"^blocks\.(?:blocks\.)?(\d+)\.", k))}
  settings = dict(dim=dim, depth=max(blocks) + 1 if blocks else 0, patch_size=weight[-1],
                  num_heads=max(dim // 64, 1))
  a = sd.get("blocks.blocks.0.mixer.A_log", sd.get("blocks.blocks.0.mixer.forward.A_log"))
  if a is not None and np.ndim(a) == 2:  # MambaVision, Vim: (channels, d_state)
    settings["d_state"] = np.shape(a)[1]
  elif a is not None:  # Hydra: one A per head; conv channels = d_inner + 4 d_state
    d_inner = np.shape(sd["blocks.blocks.0.mixer.fc_D.weight"])[1]
    settings["head_dim"] = d_inner // np.shape(a)[0]
    settings["d_state"] = (np.shape(sd["blocks.blocks.0.mixer.conv1d.weight"])[0] - d_inner) // 4
  if (p := sd.get("pos_embed")) is not None:
    registers = np.shape(sd["register_tokens"])[1] if "register_tokens" in sd else 0
    settings.update(pos_embed_grid=math.isqrt(np.shape(p)[1] - 1), num_registers=registers)
    if "blocks.0.ls1.gamma" not in sd:
      settings["layer_scale"] = None
  fc1 = next((v for k, v in sd.items() if k.endswith("mlp.fc1.weight")
              or k.endswith("channel_mixer.fc1.weight")), None)
  if fc1 is not None:
    settings["mlp_ratio"] = np.shape(fc1)[0] / dim
  return settings


def _load_into(model, sd: Mapping, strict: bool) -> None:
  style = _style(model)
  expected = {torch_key(names, style): (names, torch_shape(x.shape, names))
              for names, x in _params(model)}
  missing = [k for k in expected if k not in sd]
  unknown = sorted(k for k in sd if k not in expected)
  misshaped = [f"{k}: expected {shape}, got {np.shape(sd[k])}"
               for k, (_, shape) in expected.items() if k in sd and np.shape(sd[k]) != shape]
  problems = [(f"{len(v)} {what}", v) for what, v in (
      ("mis-shaped", misshaped), ("missing", missing), ("unknown", unknown)) if v]
  if misshaped or (strict and problems):
    lines = [f"  {what}: {', '.join(v[:12])}{' ...' if len(v) > 12 else ''}"
             for what, v in problems]
    raise ValueError("state_dict does not match the backbone (strict=False loads the matching "
                     "keys and keeps the initial values of the missing ones):\n"
                     + "\n".join(lines))
  state = nnx.state(model, nnx.Param)
  pure = nnx.to_pure_dict(state)
  for key, (names, _) in expected.items():
    if key in sd:
      node = pure
      for n in names[:-1]:
        node = node[int(n) if n.isdigit() and int(n) in node else n]
      leaf = names[-1]
      node[leaf] = np.asarray(from_torch(np.asarray(sd[key]), names), np.float32)
  nnx.replace_by_pure_dict(state, pure)
  nnx.update(model, state)


def import_settings(name: str, state_dict: Mapping, which: str = "teacher",
                    **overrides) -> tuple[dict, dict]:
  """(backbone state dict, settings for models.create): sizes inferred, overrides on top."""
  sd = backbone_state_dict(state_dict, which)
  return sd, {**infer_settings(name, sd), **overrides}


def import_state_dict(name: str, state_dict: Mapping, *, strict: bool = True,
                      which: str = "teacher", **overrides):
  """A registered backbone (eval mode) holding a PyTorch state dict's weights. state_dict may be
  any supported checkpoint form (see the module docstring); sizes are read off it, and
  overrides (models.create settings) go on top."""
  sd, settings = import_settings(name, state_dict, which, **overrides)
  model = models.create(name, rngs=nnx.Rngs(0), **settings)
  model.eval()
  _load_into(model, sd, strict)
  return model
