"""The training state and its jitted step, apart from the loop's I/O (so benchmarks and other
loops can use them without grain or TensorBoard).

    graphdef, state, shardings = sharded_state(config, mesh)
    step = make_step(config, graphdef, shardings, sharding.batch_sharding(mesh))
    state, loss, terms = step(state, batch)    # terms: the loss terms and the monitors
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from mvhybrid_jax import models, schedules, sharding
from mvhybrid_jax.data import masking
from mvhybrid_jax.train import optim, ssl

KOLEO_SCOPES = ("device", "global")


def epoch_steps(config, epochs=None) -> int:
  """Steps in `epochs` epochs, all of the run's by default: where epochs become steps."""
  return (config.epochs if epochs is None else epochs) * config.steps_per_epoch


class TrainState(nnx.Module):
  """What a pretraining step updates: the student, its EMA teacher, the student's optimiser. Its
  fields are the checkpoint's items (mvhybrid_jax/checkpoints.py) and its state's path names
  ("student/backbone/...") the names config.sharding's rules match."""

  def __init__(self, student: ssl.SSLModel, teacher: ssl.SSLModel, optimizer: nnx.Optimizer):
    self.student, self.teacher, self.optimizer = student, teacher, optimizer


def build(config) -> TrainState:
  """Student, teacher (a copy, eval mode) and optimiser, from the config."""
  student, teacher = ssl.from_config(config), ssl.from_config(config)
  teacher.eval()
  # The teacher starts as the student (copied: the step donates both, so no buffer is shared).
  nnx.update(teacher, jax.tree.map(jnp.copy, nnx.state(student, nnx.Param)))
  total = epoch_steps(config)
  tx = optim.adamw(
      learning_rate=learning_rate(config),
      weight_decay=schedules.cosine(*config.weight_decay, total), clip=config.clip,
      clip_scope=config.clip_scope, patch_embed_lr=config.patch_embed_lr,
      layer_decay=config.layer_decay, num_layers=model_settings(config)["depth"],
      freeze_last_layer_steps=epoch_steps(config, config.freeze_last_layer_epochs))
  return TrainState(student, teacher, nnx.Optimizer(student, tx, wrt=nnx.Param))


def learning_rate(config):
  """The lr schedule by step (before the per-group multipliers)."""
  return schedules.learning_rate(config.base_lr, config.batch_size,
                                 epoch_steps(config, config.warmup_epochs),
                                 epoch_steps(config), config.final_lr)


def model_settings(config) -> dict:
  """The backbone's full settings: config.model over the registry's defaults (models.resolve)."""
  return models.resolve(config.model)


def patch_size(config) -> int:
  """The backbone's patch size: the iBOT masks' grid."""
  return model_settings(config)["patch_size"]


def objective(config, devices: int | None = None) -> ssl.Objective:
  """The loss settings of a config: KoLeo per device (config.koleo_scope "device", DINOv2) or over
  the global batch; the iBOT heads on the masked patches only (config.ibot_masked_only)."""
  if config.koleo_scope not in KOLEO_SCOPES:
    raise ValueError(f"config.koleo_scope: expected one of {KOLEO_SCOPES}, got "
                     f"{config.koleo_scope!r}")
  devices = jax.device_count() if devices is None else devices
  patches = (config.crops.global_size // patch_size(config)) ** 2
  return ssl.Objective(
      student_temp=config.student_temp, koleo_weight=config.koleo_weight,
      center_momentum=config.get("center_momentum", 0.9),
      koleo_groups=devices if config.koleo_scope == "device" else 1,
      max_masked=(masking.max_masked(2 * config.batch_size, patches)
                  if config.ibot_masked_only else None))


def teacher_schedules(config):
  """(momentum, temperature) schedules by step."""
  return (schedules.cosine(*config.teacher_momentum, epoch_steps(config)),
          schedules.teacher_temperature(
              *config.teacher_temp, epoch_steps(config, config.teacher_temp_warmup_epochs)))


def sharded_state(config, mesh):
  """(graphdef, state, shardings): the TrainState's arrays as one state pytree, initialised in
  place on the mesh, split by config.sharding's rules (no host holds it whole)."""
  graphdef, abstract = nnx.split(nnx.eval_shape(lambda: build(config)))
  shardings = sharding.state_shardings(abstract, mesh, config.sharding.rules,
                                       config.sharding.min_size)
  state = jax.jit(lambda: nnx.split(build(config))[1], out_shardings=shardings)()
  return graphdef, state, shardings


def weights_finite(*modules) -> jax.Array:
  """Whether every parameter of the modules is finite: one read of each weight, fused into the
  step (benchmarks/train_step.py measures it alone, as an upper bound on its cost)."""
  weights = jax.tree.leaves(nnx.state(modules, nnx.Param))
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(w)) for w in weights]))


def make_step(config, graphdef, shardings, batch_sharding):
  """jit(state, batch) -> (state, loss, terms), with the state's buffers donated. The loss is
  that of the weights before the update; terms["state_finite"] says whether every student and
  teacher weight after it is finite (a diverging update can leave a finite loss behind it)."""
  momentum, temp = teacher_schedules(config)
  loss_settings = objective(config, batch_sharding.mesh.size)

  def step(state, batch):
    train = nnx.merge(graphdef, state)
    count = train.optimizer.step[...]
    loss, terms = ssl.train_step(train.student, train.teacher, train.optimizer, batch, temp(count),
                                 momentum(count), loss_settings)
    return (nnx.state(train), loss,
            {**terms, "state_finite": weights_finite(train.student, train.teacher)})

  return jax.jit(step, in_shardings=(shardings, batch_sharding),
                 out_shardings=(shardings, None, None), donate_argnums=0)
