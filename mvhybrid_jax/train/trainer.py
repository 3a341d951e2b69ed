"""The pretraining loop: data, student/teacher, schedules, checkpoints, logs.

Single- and multi-device on one host: the batch is sharded over a ("data",) mesh of all devices,
parameters are replicated. Checkpoints (orbax, in workdir/checkpoints) hold the student, teacher,
optimiser, and the data iterator's state; a run resumes from the latest automatically and saves
on SIGTERM/SIGINT before exiting. Metrics go to workdir/metrics.jsonl and to TensorBoard event
files in workdir/tensorboard (tensorboardX: no TensorFlow).
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import time

import grain
import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P
from tensorboardX import SummaryWriter
from tqdm import tqdm

from mvhybrid_jax import models, schedules
from mvhybrid_jax.data import augment, datasets, folders, pipeline
from mvhybrid_jax.train import optim, ssl

log = logging.getLogger(__name__)


def image_source(config):
  if config.data.path:
    if not os.path.exists(config.data.path):
      raise ValueError(f"config.data.path: {config.data.path} does not exist; set it to an "
                       "ArrayRecord written by data.folders.pack or data.wsi.tile_slide, or "
                       "leave it empty for the synthetic data")
    return folders.Images(folders.FolderSource(config.data.path))
  return folders.Images(datasets.load("synthetic_crc_classes",
                                      config.data.synthetic_config)["train"])


def build(config):
  """Student, teacher (a copy, eval mode) and optimiser, from the config."""
  m = config.model
  backbone = lambda: models.create(m.name, rngs=nnx.Rngs(config.seed), dim=m.dim, depth=m.depth,
                                   num_heads=m.num_heads, d_state=m.d_state,
                                   drop_path_rate=m.drop_path_rate, remat=m.remat,
                                   scan_impl=m.scan_impl, dtype=jnp.dtype(m.dtype))
  h = config.heads
  make = lambda: ssl.SSLModel(backbone(), prototypes=h.prototypes, hidden=h.hidden,
                              bottleneck=h.bottleneck, rngs=nnx.Rngs(config.seed + 1))
  student, teacher = make(), make()
  teacher.eval()
  total = config.epochs * config.steps_per_epoch
  tx = optim.adamw(
      learning_rate=schedules.learning_rate(config.base_lr, config.batch_size,
                                            config.warmup_epochs * config.steps_per_epoch,
                                            total, config.final_lr),
      weight_decay=schedules.cosine(*config.weight_decay, total), clip=config.clip,
      patch_embed_lr=config.patch_embed_lr,
      freeze_last_layer_steps=config.freeze_last_layer_epochs * config.steps_per_epoch)
  return student, teacher, nnx.Optimizer(student, tx, wrt=nnx.Param)


def _pure(*modules):
  return [nnx.to_pure_dict(nnx.state(m)) for m in modules]


def train(config, workdir: str, *, max_steps: int | None = None) -> dict:
  """Runs (or resumes) the pretraining in workdir; returns the last metrics. max_steps stops
  early (for tests); the schedules still follow the config's full length."""
  os.makedirs(workdir, exist_ok=True)
  total = config.epochs * config.steps_per_epoch
  hosts = jax.process_count()
  if config.batch_size % (hosts * jax.local_device_count()):
    raise ValueError(f"config.batch_size: {config.batch_size} must divide over {hosts} hosts x "
                     f"{jax.local_device_count()} devices")
  crops = augment.MultiCropConfig(global_size=config.crops.global_size,
                                  local_size=config.crops.local_size,
                                  n_local=config.crops.n_local)
  ds = pipeline.pretrain_dataset(image_source(config), batch_size=config.batch_size // hosts,
                                 seed=config.seed, crops=crops,
                                 num_workers=config.data.num_workers)
  data_iter = iter(ds)
  student, teacher, optimizer = build(config)
  nnx.update(teacher, nnx.state(student, nnx.Param))
  mesh = jax.make_mesh((jax.device_count(),), ("data",),
                       axis_types=(jax.sharding.AxisType.Auto,))
  batch_sharding = NamedSharding(mesh, P("data"))

  manager = ocp.CheckpointManager(
      os.path.abspath(os.path.join(workdir, "checkpoints")),
      options=ocp.CheckpointManagerOptions(max_to_keep=config.keep_checkpoints),
      item_names=("student", "teacher", "optimizer", "data"))
  start = 0
  if manager.latest_step() is not None:
    start = manager.latest_step()
    targets = _pure(student, teacher, optimizer)
    restored = manager.restore(start, args=ocp.args.Composite(
        student=ocp.args.StandardRestore(targets[0]), teacher=ocp.args.StandardRestore(targets[1]),
        optimizer=ocp.args.StandardRestore(targets[2]),
        data=grain.checkpoint.CheckpointRestore(data_iter)))
    for module, name in ((student, "student"), (teacher, "teacher"), (optimizer, "optimizer")):
      state = nnx.state(module)
      nnx.replace_by_pure_dict(state, restored[name])
      nnx.update(module, state)
    log.info("resumed from step %d", start)

  def save(step):
    pure = _pure(student, teacher, optimizer)
    manager.save(step, args=ocp.args.Composite(
        student=ocp.args.StandardSave(pure[0]), teacher=ocp.args.StandardSave(pure[1]),
        optimizer=ocp.args.StandardSave(pure[2]), data=grain.checkpoint.CheckpointSave(data_iter)),
        force=True)
    manager.wait_until_finished()

  stop = {"signal": None}
  handlers = {s: signal.signal(s, lambda sig, _: stop.update(signal=sig))
              for s in (signal.SIGTERM, signal.SIGINT)}
  momentum = schedules.cosine(*config.teacher_momentum, total)
  temp = schedules.teacher_temperature(*config.teacher_temp,
                                       config.teacher_temp_warmup_epochs * config.steps_per_epoch)
  end = min(total, max_steps) if max_steps is not None else total
  metrics = {}
  try:
    with open(os.path.join(workdir, "metrics.jsonl"), "a") as out, \
        SummaryWriter(os.path.join(workdir, "tensorboard")) as board, \
        tqdm(total=end, initial=start, desc="pretraining", unit="step") as bar:
      t0 = time.perf_counter()
      for step in range(start, end):
        batch = jax.device_put(next(data_iter), batch_sharding)
        loss, terms = ssl.train_step(student, teacher, optimizer, batch, temp(step),
                                     momentum(step), student_temp=config.student_temp,
                                     koleo_weight=config.koleo_weight)
        if (step + 1) % config.log_every == 0 or step + 1 == end:
          loss = float(loss)
          if not math.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {loss} at step {step + 1}; the last good "
                                     f"checkpoint is step {manager.latest_step()}")
          dt = time.perf_counter() - t0
          metrics = dict(step=step + 1, loss=loss, **{k: float(v) for k, v in terms.items()},
                         teacher_temp=float(temp(step)), momentum=float(momentum(step)),
                         images_per_s=config.batch_size * config.log_every / dt)
          out.write(json.dumps(metrics) + "\n")
          out.flush()
          for key, value in metrics.items():
            if key != "step":
              board.add_scalar(f"train/{key}", value, step + 1)
          bar.set_postfix(loss=f"{loss:.3f}", img_s=f"{metrics['images_per_s']:.1f}")
          t0 = time.perf_counter()
        bar.update(1)
        if (step + 1) % config.checkpoint_every == 0 or step + 1 == end or stop["signal"]:
          save(step + 1)
        if stop["signal"]:
          log.warning("signal %s: saved step %d, exiting", stop["signal"], step + 1)
          break
  finally:
    for s, h in handlers.items():
      signal.signal(s, h)
    manager.close()
  return metrics
