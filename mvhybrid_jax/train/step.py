"""The training state and its jitted step, apart from the loop's I/O (so benchmarks and other
loops can use them without grain or TensorBoard).

    graphdef, state, shardings = sharded_state(config, mesh)
    step = make_step(config, graphdef, shardings, sharding.batch_sharding(mesh))
    state, loss, terms = step(state, batch)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from mvhybrid_jax import schedules
from mvhybrid_jax.train import optim, sharding, ssl


def build(config):
  """Student, teacher (a copy, eval mode) and optimiser, from the config."""
  student, teacher = ssl.from_config(config), ssl.from_config(config)
  teacher.eval()
  # The teacher starts as the student (copied: the step donates both, so no buffer is shared).
  nnx.update(teacher, jax.tree.map(jnp.copy, nnx.state(student, nnx.Param)))
  total = config.epochs * config.steps_per_epoch
  tx = optim.adamw(
      learning_rate=schedules.learning_rate(config.base_lr, config.batch_size,
                                            config.warmup_epochs * config.steps_per_epoch,
                                            total, config.final_lr),
      weight_decay=schedules.cosine(*config.weight_decay, total), clip=config.clip,
      patch_embed_lr=config.patch_embed_lr, layer_decay=config.layer_decay,
      num_layers=config.model.depth, freeze_last_layer_steps=config.freeze_last_layer_epochs * config.steps_per_epoch)
  return student, teacher, nnx.Optimizer(student, tx, wrt=nnx.Param)


def teacher_schedules(config):
  """(momentum, temperature) schedules by step."""
  total = config.epochs * config.steps_per_epoch
  return (schedules.cosine(*config.teacher_momentum, total),
          schedules.teacher_temperature(*config.teacher_temp,
                                        config.teacher_temp_warmup_epochs * config.steps_per_epoch))


def sharded_state(config, mesh):
  """(graphdef, state, shardings): the student, teacher and optimiser as one state pytree,
  initialised in place on the mesh, split by config.sharding's rules (no host holds it whole)."""
  graphdef, abstract = nnx.split(nnx.eval_shape(lambda: build(config)))
  shardings = sharding.state_shardings(abstract, mesh, config.sharding.rules,
                                       config.sharding.min_size)
  state = jax.jit(lambda: nnx.split(build(config))[1], out_shardings=shardings)()
  return graphdef, state, shardings


def make_step(config, graphdef, shardings, batch_sharding):
  """jit(state, batch) -> (state, loss, terms), with the state's buffers donated."""
  momentum, temp = teacher_schedules(config)

  def step(state, batch):
    student, teacher, optimizer = nnx.merge(graphdef, state)
    count = optimizer.step[...]
    loss, terms = ssl.train_step(student, teacher, optimizer, batch, temp(count), momentum(count),
                                 student_temp=config.student_temp,
                                 koleo_weight=config.koleo_weight)
    return nnx.state((student, teacher, optimizer)), loss, terms

  return jax.jit(step, in_shardings=(shardings, batch_sharding),
                 out_shardings=(shardings, None, None), donate_argnums=0)
