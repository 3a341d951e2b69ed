"""Student and teacher networks and the DINOv2 + iBOT + KoLeo objective of one batch, with the
monitors that tell learning from collapse.

A batch from data.pipeline: global_crops (B, 2, G, G, 3), local_crops (B, n, L, L, 3),
masks (B, 2, patches). Crops are flattened crop-major, (crop, batch), as DINOv2 does.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import nnx

from mvhybrid_jax import models
from mvhybrid_jax.losses import centering, dino, ibot, koleo
from mvhybrid_jax.models.backbone import Backbone
from mvhybrid_jax.models.heads import DINOHead
from mvhybrid_jax.train import optim


CENTERINGS = ("sinkhorn_knopp", "softmax")


class Center(nnx.Variable):
  """A running mean of the teacher's logits (DINO's softmax centring): state, not a parameter."""


class SSLModel(nnx.Module):
  """A backbone with separate DINO (CLS) and iBOT (patch) heads; with softmax centring, the
  running centres of their logits too (used on the teacher)."""

  def __init__(self, backbone: Backbone, *, prototypes: int = 65536, patch_prototypes=None,
               hidden: int = 2048, bottleneck: int = 256, centering: str = "sinkhorn_knopp",
               rngs: nnx.Rngs):
    if centering not in CENTERINGS:
      raise ValueError(f"centering: expected one of {CENTERINGS}, got {centering!r}")
    self.backbone = backbone
    dim = backbone.dim
    patch_prototypes = patch_prototypes or prototypes
    self.dino_head = DINOHead(dim, prototypes, hidden=hidden, bottleneck=bottleneck, rngs=rngs)
    self.ibot_head = DINOHead(dim, patch_prototypes, hidden=hidden, bottleneck=bottleneck,
                              rngs=rngs)
    self.centering = centering
    if centering == "softmax":
      self.dino_center = Center(jnp.zeros((prototypes,), jnp.float32))
      self.ibot_center = Center(jnp.zeros((patch_prototypes,), jnp.float32))


def from_config(config) -> SSLModel:
  """The model of a pretraining config (a ConfigDict, or its dict as stored in checkpoints):
  config.model is the backbone's name and settings (models.from_settings), config.heads the
  heads'."""
  h = config["heads"]
  return SSLModel(models.from_settings(config["model"], rngs=nnx.Rngs(config["seed"])),
                  prototypes=h["prototypes"], hidden=h["hidden"], bottleneck=h["bottleneck"],
                  centering=config.get("centering", "sinkhorn_knopp"),
                  rngs=nnx.Rngs(config["seed"] + 1))


@dataclasses.dataclass(frozen=True)
class Objective:
  """The loss's settings (static under jit).

  koleo_groups: KoLeo's nearest neighbours are searched within each of this many consecutive
  groups of the batch: the device count reproduces DINOv2 (per-GPU batches), 1 the global batch.
  max_masked: the iBOT heads run on the masked patches only, gathered into a buffer of this
  static size (data.masking.max_masked), as DINOv2 does; None runs them on every patch (same
  loss, more compute).
  center_momentum: of the running centres, with softmax centring (the teacher's `centering`).
  """
  student_temp: float = 0.1
  koleo_weight: float = 0.1
  koleo_groups: int = 1
  max_masked: int | None = None
  dino_weight: float = 1.0
  ibot_weight: float = 1.0
  center_momentum: float = 0.9


def _crop_major(x):
  """(B, crops, ...) -> (crops * B, ...)."""
  return jnp.swapaxes(x, 0, 1).reshape(-1, *x.shape[2:])


@dataclasses.dataclass(frozen=True)
class MaskedPatches:
  """Where the masked patches of (images, patches) masks are, in a buffer of static size:
  index (buffer,) into the flattened patches, weight (buffer,) = 1 / the number of masked patches
  of the token's image (0 on padding), valid (buffer,)."""
  index: jax.Array
  weight: jax.Array
  valid: jax.Array

  @classmethod
  def of(cls, masks, size: int):
    flat = masks.reshape(-1)
    index = jnp.nonzero(flat, size=size, fill_value=0)[0]
    valid = jnp.arange(size) < jnp.sum(flat)
    per_image = 1.0 / jnp.maximum(jnp.sum(masks, axis=-1), 1).astype(jnp.float32)
    weight = jnp.where(valid, per_image[index // masks.shape[1]], 0.0)
    return cls(index, weight, valid)

  def gather(self, tokens):
    """(images, patches, d) -> (buffer, d)."""
    return tokens.reshape(-1, tokens.shape[-1])[self.index]


def _centred(teacher: SSLModel, center: str, logits, temp, weights, momentum: float):
  """Teacher probabilities of logits (rows, K), rows weighted by weights (rows,) in {0, 1} or
  None: Sinkhorn-Knopp, or (softmax centring) softmax((logits - centre) / temp), after which the
  teacher's centre moves to momentum * centre + (1 - momentum) * the weighted mean logit, as
  DINO does (the mean is global under a sharded jit)."""
  if teacher.centering == "sinkhorn_knopp":
    return centering.sinkhorn_knopp(logits, temp, weights=weights)
  var = getattr(teacher, center)
  probs = centering.softmax_center(logits, var[...], temp)
  var[...] = centering.update_center(var[...], logits, momentum, weights)
  return probs


def teacher_targets(teacher: SSLModel, batch, *, temp: float, max_masked: int | None = None,
                    center_momentum: float = 0.9):
  """Centred teacher probabilities: CLS (2, B, K), and patches (2B, n, K') or, with max_masked,
  the masked patches' (max_masked, K'). Sinkhorn-Knopp (DINOv2's default) or, when the teacher
  was built with centering="softmax", DINO's running centres, which this call updates."""
  b = batch["global_crops"].shape[0]
  masks = _crop_major(batch["masks"])  # (2B, patches)
  out = teacher.backbone(_crop_major(batch["global_crops"]))
  cls = _centred(teacher, "dino_center", teacher.dino_head(out["x_norm_clstoken"]), temp, None,
                 center_momentum)
  if max_masked is not None:
    where = MaskedPatches.of(masks, max_masked)
    patches = _centred(teacher, "ibot_center",
                       teacher.ibot_head(where.gather(out["x_norm_patchtokens"])), temp,
                       where.valid.astype(jnp.float32), center_momentum)
    return cls.reshape(2, b, -1), patches
  patch_logits = teacher.ibot_head(out["x_norm_patchtokens"])  # (2B, n, K')
  flat = patch_logits.reshape(-1, patch_logits.shape[-1])
  patches = _centred(teacher, "ibot_center", flat, temp, masks.reshape(-1).astype(jnp.float32),
                     center_momentum)
  return cls.reshape(2, b, -1), patches.reshape(patch_logits.shape)


def loss_terms(student: SSLModel, batch, cls_targets, patch_targets,
               objective: Objective = Objective()):
  """(total, {"dino", "ibot", "koleo"}, student's backbone CLS of the global crops (2B, dim))
  for one batch, given the teacher's targets (as teacher_targets with the same max_masked)."""
  o = objective
  b, n_local = batch["global_crops"].shape[0], batch["local_crops"].shape[1]
  masks = _crop_major(batch["masks"])
  g = student.backbone(_crop_major(batch["global_crops"]), masks)
  local = student.backbone(_crop_major(batch["local_crops"]))
  s_global = student.dino_head(g["x_norm_clstoken"]).reshape(2, b, -1)
  s_local = student.dino_head(local["x_norm_clstoken"]).reshape(n_local, b, -1)
  if o.max_masked is None:
    ibot_term = ibot.ibot_loss(student.ibot_head(g["x_norm_patchtokens"]), patch_targets, masks,
                               student_temp=o.student_temp)
  else:
    where = MaskedPatches.of(masks, o.max_masked)
    ibot_term = ibot.ibot_loss_gathered(student.ibot_head(where.gather(g["x_norm_patchtokens"])),
                                        patch_targets, where.weight, masks.shape[0],
                                        student_temp=o.student_temp)
  terms = {
      "dino": dino.dino_loss(s_global, s_local, cls_targets, student_temp=o.student_temp),
      "ibot": ibot_term,
      # KoLeo on the backbone CLS of each global crop, summed over the two crops.
      "koleo": sum(koleo.koleo_loss(c, o.koleo_groups)
                   for c in g["x_norm_clstoken"].reshape(2, b, -1)),
  }
  total = (o.dino_weight * terms["dino"] + o.ibot_weight * terms["ibot"]
           + o.koleo_weight * terms["koleo"])
  return total, terms, g["x_norm_clstoken"]


def ema_update(teacher: SSLModel, student: SSLModel, momentum) -> None:
  """teacher <- momentum * teacher + (1 - momentum) * student, parameters only."""
  t, s = nnx.state(teacher, nnx.Param), nnx.state(student, nnx.Param)
  nnx.update(teacher, jax.tree.map(lambda a, b: momentum * a + (1 - momentum) * b, t, s))


def entropy(p, weights=None):
  """Mean entropy (nats) of the rows of p (..., K), optionally weighted by row."""
  h = -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0), axis=-1)
  if weights is None:
    return jnp.mean(h)
  return jnp.sum(h * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def effective_rank(x):
  """RankMe (Garrido et al. 2023): exp of the entropy of the normalised singular values of the
  (samples, dim) embeddings; from 1 (collapsed to a line) up to min(samples, dim)."""
  s = jnp.linalg.svd(x.astype(jnp.float32), compute_uv=False)
  p = s / jnp.sum(s) + 1e-7
  return jnp.exp(-jnp.sum(p * jnp.log(p)))


def monitors(cls_targets, patch_targets, patch_weights, student_cls, grads) -> dict:
  """What tells learning from collapse (README, "Reading a run"): the teacher's target entropy
  (CLS, masked patches; uniform targets have ln K), its mean max-probability, the prototypes that
  some CLS target picks, the effective rank of the student's CLS embeddings, and the gradient
  norm of each module before clipping."""
  cls = cls_targets.reshape(-1, cls_targets.shape[-1])
  k = cls.shape[-1]
  picked = jnp.zeros(k, jnp.float32).at[jnp.argmax(cls, axis=-1)].set(1.0)
  out = {"target_entropy_cls": entropy(cls),
         "target_entropy_patch": entropy(patch_targets.reshape(-1, patch_targets.shape[-1]),
                                         patch_weights.reshape(-1)),
         "target_max_prob": jnp.mean(jnp.max(cls, axis=-1)),
         "prototypes_used": jnp.sum(picked),
         "student_rank": effective_rank(student_cls)}
  out.update({f"grad_norm_{name}": v for name, v in optim.module_norms(grads).items()})
  return out


def train_step(student: SSLModel, teacher: SSLModel, optimizer: nnx.Optimizer, batch,
               teacher_temp, momentum, objective: Objective = Objective()):
  """One step: teacher targets, student loss and gradients, AdamW update, teacher EMA. Returns
  (loss, terms and monitors). Not jitted here: the trainer jits it with the mesh's shardings."""
  cls_t, patch_t = teacher_targets(teacher, batch, temp=teacher_temp,
                                   max_masked=objective.max_masked,
                                   center_momentum=objective.center_momentum)
  cls_t, patch_t = jax.lax.stop_gradient(cls_t), jax.lax.stop_gradient(patch_t)

  def loss_fn(model):
    total, terms, student_cls = loss_terms(model, batch, cls_t, patch_t, objective)
    return total, (terms, jax.lax.stop_gradient(student_cls))

  (loss, (terms, student_cls)), grads = nnx.value_and_grad(loss_fn, has_aux=True)(student)
  masks = _crop_major(batch["masks"])
  patch_weights = (MaskedPatches.of(masks, objective.max_masked).valid
                   if objective.max_masked is not None else masks)
  stats = monitors(cls_t, patch_t, patch_weights.astype(jnp.float32), student_cls, grads)
  optimizer.update(student, grads)
  ema_update(teacher, student, momentum)
  return loss, {**terms, **stats}


def max_entropy(prototypes: int) -> float:
  """ln(prototypes): the entropy of uniform targets, the ceiling of target_entropy_*."""
  return math.log(prototypes)
