"""Student and teacher networks and the DINOv2 + iBOT + KoLeo objective of one batch.

A batch from data.pipeline: global_crops (B, 2, G, G, 3), local_crops (B, n, L, L, 3),
masks (B, 2, patches). Crops are flattened crop-major, (crop, batch), as DINOv2 does.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from mvhybrid_jax import models
from mvhybrid_jax.losses import centering, dino, ibot, koleo
from mvhybrid_jax.models.backbone import Backbone
from mvhybrid_jax.models.heads import DINOHead


class SSLModel(nnx.Module):
  """A backbone with separate DINO (CLS) and iBOT (patch) heads."""

  def __init__(self, backbone: Backbone, *, prototypes: int = 65536, patch_prototypes=None,
               hidden: int = 2048, bottleneck: int = 256, rngs: nnx.Rngs):
    self.backbone = backbone
    dim = backbone.dim
    self.dino_head = DINOHead(dim, prototypes, hidden=hidden, bottleneck=bottleneck, rngs=rngs)
    self.ibot_head = DINOHead(dim, patch_prototypes or prototypes, hidden=hidden,
                              bottleneck=bottleneck, rngs=rngs)


def from_config(config) -> SSLModel:
  """The model of a pretraining config (a ConfigDict, or its dict as stored in checkpoints):
  config.model is the backbone's name and settings, config.heads the heads'."""
  settings = dict(config["model"])
  name = settings.pop("name")
  h = config["heads"]
  return SSLModel(models.create(name, rngs=nnx.Rngs(config["seed"]), **settings),
                  prototypes=h["prototypes"], hidden=h["hidden"], bottleneck=h["bottleneck"],
                  rngs=nnx.Rngs(config["seed"] + 1))


def _crop_major(x):
  """(B, crops, ...) -> (crops * B, ...)."""
  return jnp.swapaxes(x, 0, 1).reshape(-1, *x.shape[2:])


def teacher_targets(teacher: SSLModel, batch, *, temp: float):
  """Sinkhorn-Knopp-centred teacher probabilities: CLS (2, B, K) and patches (2B, n, K')."""
  b = batch["global_crops"].shape[0]
  masks = _crop_major(batch["masks"])  # (2B, patches)
  out = teacher.backbone(_crop_major(batch["global_crops"]))
  cls = centering.sinkhorn_knopp(teacher.dino_head(out["x_norm_clstoken"]), temp)
  patch_logits = teacher.ibot_head(out["x_norm_patchtokens"])  # (2B, n, K')
  flat = patch_logits.reshape(-1, patch_logits.shape[-1])
  patches = centering.sinkhorn_knopp(flat, temp, weights=masks.reshape(-1).astype(jnp.float32))
  return cls.reshape(2, b, -1), patches.reshape(patch_logits.shape)


def loss_terms(student: SSLModel, batch, cls_targets, patch_targets, *, student_temp=0.1,
               koleo_weight=0.1, dino_weight=1.0, ibot_weight=1.0):
  """(total, {"dino", "ibot", "koleo"}) for one batch, given the teacher's targets."""
  b, n_local = batch["global_crops"].shape[0], batch["local_crops"].shape[1]
  masks = _crop_major(batch["masks"])
  g = student.backbone(_crop_major(batch["global_crops"]), masks)
  local = student.backbone(_crop_major(batch["local_crops"]))
  s_global = student.dino_head(g["x_norm_clstoken"]).reshape(2, b, -1)
  s_local = student.dino_head(local["x_norm_clstoken"]).reshape(n_local, b, -1)
  terms = {
      "dino": dino.dino_loss(s_global, s_local, cls_targets, student_temp=student_temp),
      "ibot": ibot.ibot_loss(student.ibot_head(g["x_norm_patchtokens"]), patch_targets, masks,
                             student_temp=student_temp),
      # KoLeo on the backbone CLS of each global crop, summed over the two crops.
      "koleo": sum(koleo.koleo_loss(c) for c in g["x_norm_clstoken"].reshape(2, b, -1)),
  }
  total = (dino_weight * terms["dino"] + ibot_weight * terms["ibot"]
           + koleo_weight * terms["koleo"])
  return total, terms


def ema_update(teacher: SSLModel, student: SSLModel, momentum) -> None:
  """teacher <- momentum * teacher + (1 - momentum) * student, parameters only."""
  t, s = nnx.state(teacher, nnx.Param), nnx.state(student, nnx.Param)
  nnx.update(teacher, jax.tree.map(lambda a, b: momentum * a + (1 - momentum) * b, t, s))


def train_step(student: SSLModel, teacher: SSLModel, optimizer: nnx.Optimizer, batch,
               teacher_temp, momentum, student_temp=0.1, koleo_weight=0.1):
  """One step: teacher targets, student loss and gradients, AdamW update, teacher EMA. Not jitted
  here: the trainer jits it with the mesh's shardings."""
  cls_t, patch_t = teacher_targets(teacher, batch, temp=teacher_temp)
  cls_t, patch_t = jax.lax.stop_gradient(cls_t), jax.lax.stop_gradient(patch_t)

  def loss_fn(model):
    return loss_terms(model, batch, cls_t, patch_t, student_temp=student_temp,
                      koleo_weight=koleo_weight)

  (loss, terms), grads = nnx.value_and_grad(loss_fn, has_aux=True)(student)
  optimizer.update(student, grads)
  ema_update(teacher, student, momentum)
  return loss, terms
