"""models.create and the Backbone: token layout, masks, sizes, precision, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mvhybrid_jax import models

TINY = dict(dim=32, num_heads=2, depth=2)


@pytest.fixture(scope="module")
def tiny():
  """Tiny models in eval mode (the ViTs default to drop path 0.3, active in train mode)."""
  out = {name: models.create(name, rngs=nnx.Rngs(0), **TINY) for name in models.names()}
  for model in out.values():
    model.eval()
  return out


def images(batch, side, seed=0):
  return jnp.asarray(np.random.default_rng(seed).standard_normal((batch, side, side, 3)),
                     jnp.float32)


def test_registered_names():
  assert models.names() == ["hydra_einfft", "hydra_hybrid", "mvhybrid", "vim_einfft", "vit_12",
                            "vit_24"]


@pytest.mark.parametrize("name, count", [("mvhybrid", 30_963_072), ("vit_12", 21_698_304),
                                         ("vit_24", 43_001_088)])
def test_parameter_counts_of_the_paper_models(name, count):
  """Hand-counted from the release's state dict and DINOv2's layout (spec section 1)."""
  assert models.count_params(models.create(name, rngs=nnx.Rngs(0))) == count


@pytest.mark.parametrize("side, n, cls_at", [(256, 256, 128), (112, 49, 24)])
def test_mvhybrid_cls_in_the_middle(tiny, side, n, cls_at):
  model = tiny["mvhybrid"]
  x = images(2, side)
  tokens = model.tokens(x)
  assert tokens.shape == (2, n + 1, 32)
  np.testing.assert_array_equal(np.asarray(tokens[:, cls_at]),
                                np.broadcast_to(np.asarray(model.cls_token[...])[0], (2, 32)))
  # patches keep raster order around the CLS (no positional embedding in MV_Hybrid)
  patches = model.patch_embed(x).reshape(2, n, 32)
  np.testing.assert_allclose(np.asarray(tokens[:, :cls_at]), np.asarray(patches[:, :cls_at]))
  np.testing.assert_allclose(np.asarray(tokens[:, cls_at + 1:]), np.asarray(patches[:, cls_at:]))
  out, embedding = nnx.jit(lambda m, x: (m(x), m.embed(x)))(model, x)
  assert out["x_norm_clstoken"].shape == (2, 32)
  assert out["x_norm_patchtokens"].shape == (2, n, 32)
  assert embedding.shape == (2, 64)


@pytest.mark.parametrize("side", [256, 112])
def test_vit_cls_first_with_interpolated_positions(tiny, side):
  model = tiny["vit_12"]
  n = (side // 16) ** 2
  tokens = model.tokens(images(1, side))
  assert tokens.shape == (1, n + 1, 32)
  pos = np.asarray(model.pos_embed[...])
  np.testing.assert_allclose(np.asarray(tokens[0, 0]), np.asarray(model.cls_token[...])[0, 0]
                             + pos[0, 0], rtol=1e-6)
  assert model(images(1, side))["x_norm_patchtokens"].shape == (1, n, 32)


def test_registers_sit_after_the_cls():
  model = models.create("vit_12", rngs=nnx.Rngs(0), num_registers=3, **TINY)
  out = model(images(2, 64))
  assert out["x_norm_regtokens"].shape == (2, 3, 32)
  assert out["x_norm_patchtokens"].shape == (2, 16, 32)
  tokens = model.tokens(images(2, 64))
  np.testing.assert_array_equal(np.asarray(tokens[0, 1:4]),
                                np.asarray(model.register_tokens[...])[0])


def test_hidden_states_are_the_residual_stream():
  """depth + 1 states: the block input, then each block applied in turn; the last, normed, is
  the output; patch_grid puts the patch tokens back on their raster grid around CLS/registers."""
  model = models.create("vit_12", rngs=nnx.Rngs(0), num_registers=2, **TINY)
  model.eval()
  x = images(2, 64)
  states = model.hidden_states(x)
  assert len(states) == 3
  np.testing.assert_allclose(np.asarray(states[0]), np.asarray(model.tokens(x)))
  for block, before, after in zip(model.blocks, states, states[1:]):
    np.testing.assert_allclose(np.asarray(after), np.asarray(block(before)), rtol=1e-6)
  out = model(x)
  grid = model.patch_grid(model.norm(states[-1]), 4, 4)
  np.testing.assert_allclose(np.asarray(grid).reshape(2, 16, 32),
                             np.asarray(out["x_norm_patchtokens"]), rtol=1e-6)
  patches = model.patch_embed(x)  # (2, 4, 4, 32), raster order
  pos = np.asarray(models.pos_embed.interpolate(model.pos_embed[...], 4, 4))[:, 1:]
  np.testing.assert_allclose(np.asarray(model.patch_grid(states[0], 4, 4)),
                             np.asarray(patches) + pos.reshape(1, 4, 4, 32), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["mvhybrid", "vit_12"])
def test_masked_patches_are_replaced_by_the_mask_token(tiny, name):
  """Two images that differ only inside the masked patches give identical outputs."""
  model = tiny[name]
  model.mask_token[...] = jnp.asarray(np.random.default_rng(3).standard_normal((1, 32)),
                                      jnp.float32)
  a = images(1, 64, seed=1)
  b = a.at[:, :16, 16:48].set(images(1, 64, seed=2)[:, :16, 16:48])  # patches 1 and 2
  masks = jnp.zeros((1, 16), bool).at[:, 1:3].set(True)
  out_a, out_b = model(a, masks), model(b, masks)
  for key in ("x_norm_clstoken", "x_norm_patchtokens"):
    np.testing.assert_allclose(np.asarray(out_a[key]), np.asarray(out_b[key]), rtol=1e-5,
                               atol=1e-6)
  assert not np.allclose(np.asarray(model(a)["x_norm_patchtokens"]),
                         np.asarray(model(b)["x_norm_patchtokens"]), atol=1e-3)
  tokens = model.tokens(a, masks)
  first = 1 if name == "mvhybrid" else 2  # patch 1 is token 1 (CLS at 8) / token 2 (CLS at 0)
  want = np.asarray(model.mask_token[...])[0]
  if name == "vit_12":
    want = want + np.asarray(models.pos_embed.interpolate(model.pos_embed[...], 4, 4))[0, 2]
  np.testing.assert_allclose(np.asarray(tokens[0, first]), want, rtol=1e-5, atol=1e-6)


def test_init_statistics():
  model = models.create("vit_12", rngs=nnx.Rngs(0), depth=2)
  blk = model.blocks[0]
  assert abs(float(jnp.std(blk.mixer.qkv.kernel[...])) - 0.02) < 0.001
  np.testing.assert_array_equal(np.asarray(blk.mixer.qkv.bias[...]), 0)
  np.testing.assert_array_equal(np.asarray(blk.norm1.scale[...]), 1)
  np.testing.assert_allclose(np.asarray(blk.ls1.gamma[...]), 1e-5)
  assert float(jnp.abs(model.cls_token[...]).max()) < 1e-5  # DINOv2: normal(1e-6)
  mv = models.create("mvhybrid", rngs=nnx.Rngs(0), depth=2)
  assert abs(float(jnp.std(mv.blocks[1].channel_mixer.fc1.kernel[...])) - 0.02) < 0.001
  assert mv.blocks[0].ls1 is None and mv.pos_embed is None


def test_layout_splits_mamba_then_attention():
  assert models.mvhybrid_layout(24) == ("mamba",) * 12 + ("attention",) * 12
  assert models.mvhybrid_layout(5) == ("mamba",) * 3 + ("attention",) * 2  # range(3, 5)


def test_jit_and_eval_determinism(tiny):
  model = tiny["mvhybrid"]
  model.eval()
  x = images(2, 32)
  f = nnx.jit(lambda m, x: m(x)["x_norm_clstoken"])
  np.testing.assert_array_equal(np.asarray(f(model, x)), np.asarray(f(model, x)))
  np.testing.assert_allclose(np.asarray(f(model, x)), np.asarray(model(x)["x_norm_clstoken"]),
                             rtol=1e-5, atol=1e-5)


def test_drop_path_only_in_train_mode():
  # No layer scale, so that a dropped block changes the output clearly.
  model = models.create("vit_12", rngs=nnx.Rngs(0), drop_path_rate=0.9, layer_scale=None, **TINY)
  x = images(16, 32)
  model.eval()
  a, b = model(x)["x_norm_clstoken"], model(x)["x_norm_clstoken"]
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  model.train()
  c, d = model(x)["x_norm_clstoken"], model(x)["x_norm_clstoken"]
  assert not np.allclose(np.asarray(c), np.asarray(d), atol=1e-3)


@pytest.mark.parametrize("name", ["mvhybrid", "vit_12"])
def test_bf16_compute_stays_close_to_float32(name):
  f32 = models.create(name, rngs=nnx.Rngs(0), **TINY)
  bf16 = models.create(name, rngs=nnx.Rngs(0), dtype=jnp.bfloat16, **TINY)
  f32.eval()
  bf16.eval()
  x = images(2, 32)
  a = f32.embed(x)
  b = bf16.embed(x.astype(jnp.bfloat16))
  assert b.dtype == jnp.bfloat16
  assert jax.tree.leaves(nnx.state(bf16, nnx.Param))[0].dtype == jnp.float32
  err = float(jnp.max(jnp.abs(b.astype(jnp.float32) - a)) / jnp.max(jnp.abs(a)))
  assert err < 0.05


def test_remat_gives_the_same_gradients():
  x = images(2, 32)
  grads = []
  for remat in (False, True):
    model = models.create("mvhybrid", rngs=nnx.Rngs(0), remat=remat,
                          **{**TINY, "depth": 1})
    model.eval()
    g = nnx.jit(nnx.grad(lambda m: jnp.sum(m.embed(x) ** 2)))(model)  # as training runs it
    grads.append(jax.tree.leaves(nnx.state(g)))
  for a, b in zip(*grads):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("call, message", [
    (lambda m: m(jnp.zeros((1, 40, 32, 3))), "multiples of the patch size 16"),
    (lambda m: m(jnp.zeros((1, 32, 32, 4))), r"expected \(batch, H, W, 3\)"),
    (lambda m: m(jnp.zeros((1, 32, 32, 3)), jnp.zeros((1, 5), bool)), r"masks: expected bool"),
    (lambda m: m(jnp.zeros((1, 32, 32, 3)), jnp.zeros((1, 4), jnp.int32)), "masks"),
])
def test_bad_input(tiny, call, message):
  with pytest.raises(ValueError, match=message):
    call(tiny["mvhybrid"])


def test_unknown_name_or_override():
  with pytest.raises(ValueError, match="unknown backbone 'vim'"):
    models.create("vim", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match=r"unknown \['widht'\]"):
    models.create("mvhybrid", rngs=nnx.Rngs(0), widht=3)
