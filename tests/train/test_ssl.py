"""The pretraining step: EMA, parameter groups, last-layer freeze, and learning on a fixed batch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from flax import nnx

from mvhybrid_jax import models
from mvhybrid_jax.train import optim, ssl

TINY = dict(dim=32, num_heads=2, depth=2)


def make(name="mvhybrid", seed=0):
  backbone = models.create(name, rngs=nnx.Rngs(seed), **TINY)
  return ssl.SSLModel(backbone, prototypes=64, hidden=32, bottleneck=16, rngs=nnx.Rngs(seed))


def batch(b=4, seed=0):
  rng = np.random.default_rng(seed)
  masks = np.zeros((b, 2, 16), bool)
  masks[::2, 0, :5] = True
  return {"global_crops": jnp.asarray(rng.standard_normal((b, 2, 64, 64, 3)), jnp.float32),
          "local_crops": jnp.asarray(rng.standard_normal((b, 3, 32, 32, 3)), jnp.float32),
          "masks": jnp.asarray(masks)}


def paths(tree):
  """{"backbone/blocks/0/...": leaf}, without the `.value` key of nnx Variables."""
  return {"/".join(n for n in (str(getattr(k, "key", k)) for k in p) if n != ".value"): v
          for p, v in jax.tree_util.tree_leaves_with_path(tree)}


def test_ema_update():
  s, t = make(seed=0), make(seed=1)
  before = paths(nnx.state(t, nnx.Param))
  ssl.ema_update(t, s, 0.9)
  after, student = paths(nnx.state(t, nnx.Param)), paths(nnx.state(s, nnx.Param))
  for k in before:
    np.testing.assert_allclose(np.asarray(after[k]), 0.9 * np.asarray(before[k])
                               + 0.1 * np.asarray(student[k]), rtol=1e-6, atol=1e-7)


def test_decay_mask_follows_dinov2_groups():
  mask = paths(optim.decay_mask(nnx.state(make(), nnx.Param)))

  def pick(suffix):
    found = [v for k, v in mask.items() if k.endswith(suffix)]
    assert found, suffix
    return found

  assert not any(pick("norm1/scale")) and not any(pick("qkv/bias"))
  assert all(pick("mixer/A_log")) and all(pick("mixer/D")) and all(pick("complex_bias_1"))
  assert all(pick("cls_token")) and all(pick("weight_v"))
  vit = paths(optim.decay_mask(nnx.state(make("vit_12"), nnx.Param)))
  gammas = [v for k, v in vit.items() if k.endswith("gamma")]
  assert gammas and not any(gammas)


def _optimizer(student, freeze=0, lr=3e-3):
  tx = optim.adamw(learning_rate=optax_const(lr), weight_decay=optax_const(0.04),
                   freeze_last_layer_steps=freeze)
  return nnx.Optimizer(student, tx, wrt=nnx.Param)


def optax_const(v):
  return lambda step: jnp.asarray(v, jnp.float32)


# Jitted, as the trainer runs them: one compile per call signature, not one per eager op (each
# eager call of these compiled hundreds of small programs, most of these tests' time).
train_step = nnx.jit(ssl.train_step, static_argnames=("objective",))
teacher_targets = nnx.jit(ssl.teacher_targets, static_argnames=("max_masked",))
loss_terms = nnx.jit(ssl.loss_terms, static_argnames=("objective",))


def test_a_few_steps_lower_the_loss():
  student, teacher = make(), make()
  nnx.update(teacher, nnx.state(student))
  teacher.eval()
  opt = _optimizer(student)
  x = batch()
  losses = [float(train_step(student, teacher, opt, x, 0.04, 0.9)[0]) for _ in range(8)]
  assert np.isfinite(losses).all()
  assert losses[-1] < losses[0] - 0.05, losses


def test_last_layer_frozen_then_released():
  student, teacher = make(), make()
  teacher.eval()
  opt = _optimizer(student, freeze=1)
  v0 = np.asarray(student.dino_head.weight_v[...])
  k0 = np.asarray(student.dino_head.mlp[0].kernel[...])
  train_step(student, teacher, opt, batch(), 0.04, 0.99)
  np.testing.assert_array_equal(np.asarray(student.dino_head.weight_v[...]), v0)
  assert not np.allclose(np.asarray(student.dino_head.mlp[0].kernel[...]), k0)
  train_step(student, teacher, opt, batch(), 0.04, 0.99)
  assert not np.allclose(np.asarray(student.dino_head.weight_v[...]), v0)


def test_loss_terms_are_finite_and_positive():
  student, teacher = make(), make()
  cls_t, patch_t = teacher_targets(teacher, batch(), temp=0.04)
  np.testing.assert_allclose(np.asarray(cls_t).sum(-1), 1.0, rtol=1e-4)
  total, terms, student_cls = loss_terms(student, batch(), cls_t, patch_t)
  assert all(np.isfinite(float(v)) for v in terms.values())
  assert float(terms["dino"]) > 0 and float(terms["ibot"]) > 0
  assert student_cls.shape == (8, TINY["dim"])


def test_ibot_on_gathered_masked_patches_equals_all_patches():
  """DINOv2's gather (the iBOT heads on a buffer of the masked patches, padded) gives the same
  targets and loss as running the heads on every patch and masking."""
  student, teacher = make(seed=0), make(seed=1)
  x = batch(b=6, seed=2)
  masks = np.zeros((6, 2, 16), bool)
  masks[0, 0, :3] = masks[1, 1, 4:12] = masks[3, 0, ::3] = True  # 3 + 8 + 6 = 17 masked
  x["masks"] = jnp.asarray(masks)
  full = ssl.Objective()
  gathered = ssl.Objective(max_masked=24)  # room for 7 padding rows
  cls_a, patch_a = teacher_targets(teacher, x, temp=0.05)
  cls_b, patch_b = teacher_targets(teacher, x, temp=0.05, max_masked=24)
  flat = np.asarray(patch_a).reshape(-1, 64)[np.swapaxes(masks, 0, 1).reshape(-1)]
  np.testing.assert_allclose(np.asarray(patch_b)[:17], flat, rtol=1e-4, atol=1e-7)
  assert np.all(np.asarray(patch_b)[17:] == 0)
  loss_a, terms_a, _ = loss_terms(student, x, cls_a, patch_a, objective=full)
  loss_b, terms_b, _ = loss_terms(student, x, cls_b, patch_b, objective=gathered)
  np.testing.assert_allclose(float(terms_b["ibot"]), float(terms_a["ibot"]), rtol=1e-5)
  np.testing.assert_allclose(float(loss_b), float(loss_a), rtol=1e-5)


def test_softmax_centring_targets_and_running_centres():
  """DINO's centring: targets softmax((logits - c) / temp) with the centre before the step, then
  c <- 0.9 c + 0.1 mean logit: over the CLS of both global crops, and over the masked patches only
  (the gathered buffer's padding left out). Only the teacher's centres move."""
  def soft(seed):
    backbone = models.create("mvhybrid", rngs=nnx.Rngs(seed), **TINY)
    return ssl.SSLModel(backbone, prototypes=64, hidden=32, bottleneck=16, centering="softmax",
                        rngs=nnx.Rngs(seed))
  teacher = soft(1)
  teacher.eval()
  rng = np.random.default_rng(5)
  c_cls, c_patch = rng.normal(0, 0.1, 64), rng.normal(0, 0.1, 64)
  teacher.dino_center[...] = jnp.asarray(c_cls, jnp.float32)
  teacher.ibot_center[...] = jnp.asarray(c_patch, jnp.float32)
  x = batch(b=6, seed=3)
  masks = np.zeros((6, 2, 16), bool)
  masks[0, 0, :3] = masks[1, 1, 4:12] = masks[3, 0, ::3] = True
  x["masks"] = jnp.asarray(masks)
  @nnx.jit
  def logits(teacher, crops):  # (2B, K), (2B, n, K)
    out = teacher.backbone(jnp.swapaxes(crops, 0, 1).reshape(12, 64, 64, 3))
    return teacher.dino_head(out["x_norm_clstoken"]), teacher.ibot_head(out["x_norm_patchtokens"])
  cls_logits, patch_logits = (np.asarray(v, np.float64) for v in logits(teacher, x["global_crops"]))
  masked = patch_logits.reshape(-1, 64)[np.swapaxes(masks, 0, 1).reshape(-1)]  # (17, K)
  softmax = lambda z: np.exp(z - z.max(-1, keepdims=True)) / np.exp(
      z - z.max(-1, keepdims=True)).sum(-1, keepdims=True)
  cls_t, patch_t = teacher_targets(teacher, x, temp=0.05, max_masked=24)
  np.testing.assert_allclose(np.asarray(cls_t).reshape(12, 64), softmax((cls_logits - c_cls) / 0.05),
                             rtol=2e-4, atol=1e-7)
  np.testing.assert_allclose(np.asarray(patch_t)[:17], softmax((masked - c_patch) / 0.05),
                             rtol=2e-4, atol=1e-7)
  np.testing.assert_allclose(np.asarray(teacher.dino_center[...]),
                             0.9 * c_cls + 0.1 * cls_logits.mean(0), rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(np.asarray(teacher.ibot_center[...]),
                             0.9 * c_patch + 0.1 * masked.mean(0), rtol=1e-4, atol=1e-6)
  student = soft(0)
  opt = _optimizer(student)
  before = np.asarray(teacher.dino_center[...])
  train_step(student, teacher, opt, x, 0.05, 0.9, ssl.Objective(max_masked=24))
  assert not np.allclose(np.asarray(teacher.dino_center[...]), before)
  assert np.all(np.asarray(student.dino_center[...]) == 0)  # the student's are never used
  with pytest.raises(ValueError, match="centering: expected one of"):
    ssl.SSLModel(models.create("mvhybrid", rngs=nnx.Rngs(0), **TINY), centering="center",
                 rngs=nnx.Rngs(0))


def test_monitors_against_numpy_and_scipy():
  rng = np.random.default_rng(4)
  cls = rng.dirichlet(np.full(16, 0.3), size=(2, 5))  # (2, B, K)
  patch = rng.dirichlet(np.full(16, 0.5), size=7)
  weights = np.array([1, 1, 0, 1, 0, 1, 1], np.float32)
  emb = rng.standard_normal((10, 6)) @ np.diag([3, 2, 1, 0.5, 0.1, 0.01])
  grads = {"backbone": {"w": rng.standard_normal((3, 4))}, "dino_head": {"v": rng.standard_normal(5)}}
  m = ssl.monitors(jnp.asarray(cls), jnp.asarray(patch), jnp.asarray(weights),
                   jnp.asarray(emb, jnp.float32), jax.tree.map(jnp.asarray, grads))
  flat = cls.reshape(10, 16)
  np.testing.assert_allclose(float(m["target_entropy_cls"]), scipy.stats.entropy(flat, axis=1).mean(),
                             rtol=1e-5)
  np.testing.assert_allclose(float(m["target_entropy_patch"]),
                             scipy.stats.entropy(patch[weights > 0], axis=1).mean(), rtol=1e-5)
  np.testing.assert_allclose(float(m["target_max_prob"]), flat.max(1).mean(), rtol=1e-5)
  assert float(m["prototypes_used"]) == len(np.unique(flat.argmax(1)))
  s = np.linalg.svd(emb, compute_uv=False)
  np.testing.assert_allclose(float(m["student_rank"]), np.exp(scipy.stats.entropy(s / s.sum())),
                             rtol=1e-4)
  np.testing.assert_allclose(float(m["grad_norm_dino_head"]), np.linalg.norm(grads["dino_head"]["v"]),
                             rtol=1e-5)
  assert 1 <= float(m["student_rank"]) <= 6
  uniform = ssl.monitors(jnp.full((2, 5, 16), 1 / 16), jnp.asarray(patch), jnp.asarray(weights),
                         jnp.asarray(emb, jnp.float32), jax.tree.map(jnp.asarray, grads))
  np.testing.assert_allclose(float(uniform["target_entropy_cls"]), ssl.max_entropy(16), rtol=1e-5)


def test_layer_wise_lr_decay():
  """With layer_decay 0.9 over 2 blocks, each update is the undecayed one times 0.9 ** (3 - layer):
  layer 0 for embeddings and tokens, block i is layer i + 1, the final norm and heads layer 3."""
  student = make()
  params = nnx.state(student, nnx.Param)
  grads = jax.tree.map(lambda p: jax.random.normal(jax.random.key(1), p.shape, p.dtype), params)

  def update(decay):
    tx = optim.adamw(learning_rate=optax_const(1e-3), weight_decay=optax_const(0.0),
                     layer_decay=decay, num_layers=2)
    return paths(jax.jit(lambda g, p: tx.update(g, tx.init(p), p)[0])(grads, params))

  base, decayed = update(1.0), update(0.9)
  expected_layer = lambda k: (0 if any(t in k for t in ("patch_embed", "cls_token", "mask_token"))
                              else 1 if "blocks/0/" in k else 2 if "blocks/1/" in k else 3)
  seen = set()
  for k in base:
    layer = expected_layer(k)
    seen.add(layer)
    np.testing.assert_allclose(np.asarray(decayed[k]), 0.9 ** (3 - layer) * np.asarray(base[k]),
                               rtol=1e-5, err_msg=k)
  assert seen == {0, 1, 2, 3}
  assert optim.lr_multiplier(["backbone", "patch_embed", "kernel"], patch_embed_lr=0.2,
                             layer_decay=0.5, num_layers=2) == 0.2 * 0.5 ** 3


def test_clip_by_module_equals_a_loop_over_modules():
  """Each module clipped as torch's clip_grad_norm_ would alone: g * min(1, 3 / (||g|| + 1e-6)),
  here with the backbone's gradients large and the heads' small (as at paper size)."""
  params = nnx.state(make(), nnx.Param)
  scale = {"backbone": 5.0, "dino_head": 0.01, "ibot_head": 0.2}
  keys = iter(jax.random.split(jax.random.key(3), 1000))
  tree = jax.tree_util.tree_map_with_path(
      lambda p, x: scale[str(p[0].key)] * jax.random.normal(next(keys), x.shape), params)
  grads = paths(tree)
  clipped = paths(optim.clip_by_module_norm(3.0).update(tree, None)[0])
  coefs = {}
  for module in scale:
    names = [k for k in grads if k.split("/")[0] == module]
    norm = np.sqrt(sum(np.sum(np.asarray(grads[k], np.float64) ** 2) for k in names))
    coefs[module] = min(1.0, 3.0 / (norm + 1e-6))
    for k in names:
      np.testing.assert_allclose(np.asarray(clipped[k]), coefs[module] * np.asarray(grads[k]),
                                 rtol=1e-5, atol=1e-8, err_msg=k)
    np.testing.assert_allclose(float(optim.module_norms(tree)[module]), norm, rtol=1e-5)
  assert coefs["backbone"] < 1 and coefs["dino_head"] == 1.0  # only the backbone is clipped
