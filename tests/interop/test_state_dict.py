"""Key names and layouts, checkpoint unwrapping, strictness, and exact round trips."""

import os

import numpy as np
import pytest
from flax import nnx

from mvhybrid_jax import interop, models

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures")
TINY = dict(dim=64, depth=4, num_heads=2)


def release_listing():
  """{key: shape} of the released MV_Hybrid (spec: mvhybrid_state_dict.txt)."""
  out = {}
  for line in open(os.path.join(FIXTURES, "mvhybrid_state_dict.txt")):
    if line.strip() and not line.startswith("#"):
      key, shape = line.split(" ", 1)
      out[key] = tuple(int(v) for v in shape.strip("()\n ").split(",") if v.strip())
  return out


def test_export_has_the_releases_keys_and_shapes():
  listing = release_listing()
  assert len(listing) == 354
  sd = interop.export_state_dict(models.create("mvhybrid", rngs=nnx.Rngs(0)))
  assert {k: v.shape for k, v in sd.items()} == listing


def random_sd(name, seed=0, **settings):
  model = models.create(name, rngs=nnx.Rngs(seed), **{**TINY, **settings})
  rng = np.random.default_rng(seed)
  return {k: rng.standard_normal(v.shape).astype(np.float32)
          for k, v in interop.export_state_dict(model).items()}


@pytest.mark.parametrize("name, settings", [
    ("mvhybrid", {}), ("vit_12", {}), ("vit_24", {}), ("vim_einfft", dict(d_state=8)),
    ("hydra_einfft", dict(d_state=8, head_dim=32)), ("hydra_hybrid", dict(d_state=8, head_dim=32))])
def test_round_trip_is_exact(name, settings):
  """Every backbone; sizes (d_state, Hydra's head_dim) are read back off the weights."""
  sd = random_sd(name, **settings)
  back = interop.export_state_dict(interop.import_state_dict(name, sd, num_heads=2))
  assert sorted(back) == sorted(sd)
  for k in sd:
    np.testing.assert_array_equal(back[k], sd[k], err_msg=k)


def test_layouts_against_numpy():
  """A Linear weight (out, in) acts as x @ W.T; a depthwise Conv1d weight (C, 1, k) as
  sum_j w[c, 0, j] x[t + j - 1, c] (padding 1 left, 2 right)."""
  sd = random_sd("mvhybrid")
  model = interop.import_state_dict("mvhybrid", sd, num_heads=2)
  x = np.random.default_rng(1).standard_normal((1, 5, 64)).astype(np.float32)
  w = sd["blocks.blocks.0.mixer.in_proj.weight"]
  np.testing.assert_allclose(np.asarray(model.blocks[0].mixer.in_proj(x)), x @ w.T, rtol=1e-5,
                             atol=1e-5)
  conv = sd["blocks.blocks.0.mixer.conv1d_x.weight"]  # (C, 1, 4)
  channels = conv.shape[0]
  u = np.random.default_rng(2).standard_normal((1, 6, channels)).astype(np.float32)
  padded = np.pad(u, ((0, 0), (1, 2), (0, 0)))
  want = sum(conv[:, 0, j] * padded[:, j:j + 6] for j in range(4))
  np.testing.assert_allclose(np.asarray(model.blocks[0].mixer.conv1d_x(u)), want, rtol=1e-5,
                             atol=1e-5)


def test_unwraps_training_checkpoints():
  sd = random_sd("mvhybrid")
  other = random_sd("mvhybrid", seed=1)
  head = {"dino_head.mlp.0.weight": np.ones((8, 64), np.float32)}
  checkpoint = {"model": {**{f"module.teacher.backbone.{k}": v for k, v in sd.items()},
                          **{f"module.student.backbone.{k}": v for k, v in other.items()},
                          **{f"module.teacher.{k}": v for k, v in head.items()}},
                "iteration": 5}
  for which, want in (("teacher", sd), ("student", other)):
    got = interop.backbone_state_dict(checkpoint, which)
    assert sorted(got) == sorted(want)
    assert all(np.array_equal(got[k], want[k]) for k in want)
  # DINOv2's eval checkpoint {"teacher": {...}} and an "encoder." wrapper.
  wrapped = {"teacher": {f"encoder.backbone.{k}": v for k, v in sd.items()}}
  assert sorted(interop.backbone_state_dict(wrapped)) == sorted(sd)
  with pytest.raises(ValueError, match=r"holds \['student'\], not 'teacher'"):
    interop.backbone_state_dict({f"student.backbone.{k}": v for k, v in sd.items()})


def test_hugging_face_v4_names():
  """transformers 4 (and Hub) names: attention.attention.{query,key,value}, output.dense."""
  sd = random_sd("vit_12", depth=1)
  dim = 64
  q, k, v = np.split(sd["blocks.0.attn.qkv.weight"], 3)
  qb, kb, vb = np.split(sd["blocks.0.attn.qkv.bias"], 3)
  hf = {"dinov2.embeddings.cls_token": sd["cls_token"],
        "dinov2.embeddings.mask_token": sd["mask_token"],
        "dinov2.embeddings.position_embeddings": sd["pos_embed"],
        "dinov2.embeddings.patch_embeddings.projection.weight": sd["patch_embed.proj.weight"],
        "dinov2.embeddings.patch_embeddings.projection.bias": sd["patch_embed.proj.bias"],
        "dinov2.layernorm.weight": sd["norm.weight"], "dinov2.layernorm.bias": sd["norm.bias"]}
  p = "dinov2.encoder.layer.0."
  for name, w, b in (("query", q, qb), ("key", k, kb), ("value", v, vb)):
    hf[p + f"attention.attention.{name}.weight"], hf[p + f"attention.attention.{name}.bias"] = w, b
  hf[p + "attention.output.dense.weight"] = sd["blocks.0.attn.proj.weight"]
  hf[p + "attention.output.dense.bias"] = sd["blocks.0.attn.proj.bias"]
  for n in ("norm1", "norm2", "mlp.fc1", "mlp.fc2"):
    for kind in ("weight", "bias"):
      hf[p + f"{n}.{kind}"] = sd[f"blocks.0.{n}.{kind}"]
  hf[p + "layer_scale1.lambda1"] = sd["blocks.0.ls1.gamma"]
  hf[p + "layer_scale2.lambda1"] = sd["blocks.0.ls2.gamma"]
  got = interop.backbone_state_dict(hf)
  assert sorted(got) == sorted(sd) and all(np.array_equal(got[x], sd[x]) for x in sd)
  assert dim == got["cls_token"].shape[-1]


def test_sizes_are_inferred():
  sd = random_sd("vit_12", dim=128, depth=3, pos_embed_grid=8, num_registers=4)
  model = interop.import_state_dict("vit_12", sd)
  assert (model.dim, len(model.blocks), model.num_registers) == (128, 3, 4)
  assert model.blocks[0].mixer.num_heads == 2  # 64 per head
  sd = random_sd("mvhybrid", d_state=8)
  assert interop.import_settings("mvhybrid", sd)[1]["d_state"] == 8


def test_strict_errors_list_every_problem():
  sd = random_sd("mvhybrid")
  broken = dict(sd)
  del broken["norm.weight"]
  broken["blocks.blocks.0.mixer.extra"] = np.zeros(3, np.float32)
  broken["blocks.blocks.1.mixer.D"] = np.zeros(7, np.float32)
  with pytest.raises(ValueError) as e:
    interop.import_state_dict("mvhybrid", broken, num_heads=2)
  message = str(e.value)
  assert "1 mis-shaped: blocks.blocks.1.mixer.D: expected (64,), got (7,)" in message
  assert "1 missing: norm.weight" in message and "1 unknown: blocks.blocks.0.mixer.extra" in message
  # Non-strict: missing keys keep their initial values, unknown ones are ignored; shapes never.
  del broken["blocks.blocks.1.mixer.D"]
  model = interop.import_state_dict("mvhybrid", broken, strict=False, num_heads=2)
  np.testing.assert_array_equal(np.asarray(model.norm.scale[...]), np.ones(64, np.float32))
  np.testing.assert_array_equal(np.asarray(model.norm.bias[...]), sd["norm.bias"])
