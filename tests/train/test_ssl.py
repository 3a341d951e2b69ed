"""The pretraining step: EMA, parameter groups, last-layer freeze, and learning on a fixed batch."""

import jax
import jax.numpy as jnp
import numpy as np
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


train_step = nnx.jit(ssl.train_step, static_argnames=("student_temp", "koleo_weight"))


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
  cls_t, patch_t = ssl.teacher_targets(teacher, batch(), temp=0.04)
  np.testing.assert_allclose(np.asarray(cls_t).sum(-1), 1.0, rtol=1e-4)
  total, terms = ssl.loss_terms(student, batch(), cls_t, patch_t)
  assert all(np.isfinite(float(v)) for v in terms.values())
  assert float(terms["dino"]) > 0 and float(terms["ibot"]) > 0


def test_layer_wise_lr_decay():
  """With layer_decay 0.9 over 2 blocks, each update is the undecayed one times 0.9 ** (3 - layer):
  layer 0 for embeddings and tokens, block i is layer i + 1, the final norm and heads layer 3."""
  student = make()
  params = nnx.state(student, nnx.Param)
  grads = jax.tree.map(lambda p: jax.random.normal(jax.random.key(1), p.shape, p.dtype), params)

  def update(decay):
    tx = optim.adamw(learning_rate=optax_const(1e-3), weight_decay=optax_const(0.0),
                     layer_decay=decay, num_layers=2)
    return paths(tx.update(grads, tx.init(params), params)[0])

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
