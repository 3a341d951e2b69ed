"""The pretraining loop: data, student/teacher, schedules, sharding, checkpoints, logs.

One program for one CPU, one GPU, or many hosts (after train.py's distributed.initialize): the
state (student, teacher, optimiser) is sharded over a (data, fsdp) mesh by config.sharding's rules,
each host feeds its own shard of the data, and one jitted step with explicit shardings and donated
buffers runs on global arrays.

Checkpoints (orbax, in workdir/checkpoints, written by all hosts together) hold the student,
teacher, optimiser, the data iterator's state and the config; a run resumes from the latest
automatically and saves on SIGTERM/SIGINT before exiting. Process 0 writes metrics to
workdir/metrics.jsonl and to TensorBoard event files in workdir/tensorboard (tensorboardX: no
TensorFlow), and loss.png at the end; the teacher backbone is exported to
workdir/teacher_backbone for eval.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import signal
import time

import grain
import jax
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils
from tensorboardX import SummaryWriter
from tqdm import tqdm

from mvhybrid_jax import checkpoints, models, sharding
from mvhybrid_jax.data import augment, datasets, folders, pipeline, records
from mvhybrid_jax.train import checks, plots, ssl, step as step_lib
from mvhybrid_jax.train import workdir as workdir_lib

log = logging.getLogger(__name__)
STATE_KEYS = ("model", "heads", "centering")  # what fixes the saved state's shapes
RUNTIME_MODEL_KEYS = ("dtype", "remat", "scan_impl", "drop_path_rate")


def crop_config(crops) -> augment.MultiCropConfig:
  """config.crops -> MultiCropConfig: any of its fields, sequences as tuples."""
  fields = {f.name for f in dataclasses.fields(augment.MultiCropConfig)}
  unknown = sorted(set(crops) - fields)
  if unknown:
    raise ValueError(f"config.crops: unknown keys {unknown}; expected some of {sorted(fields)}")
  return augment.MultiCropConfig(**{k: tuple(v) if isinstance(v, (list, tuple)) else v
                                    for k, v in crops.items()})


def image_source(config):
  """config.data.path (ArrayRecord shards: a file, folder, glob or list file) or the synthetic
  tiles."""
  if config.data.path:
    try:
      return records.Shards(config.data.path)
    except ValueError as e:
      raise ValueError(f"config.data.path: {e}") from None
  load = lambda: datasets.load("synthetic_crc_classes", config.data.synthetic_config)["train"]
  if jax.process_count() > 1:  # process 0 writes the synthetic data once; the others then read
    if jax.process_index() == 0:
      load()
    multihost_utils.sync_global_devices("synthetic data written")
  return folders.Images(load(), name=f"synthetic_crc_classes/{config.data.synthetic_config}")


class Preempted(Exception):
  """A signal stopped the run after it saved its step: running the same command resumes it."""


class Checkpoints:
  """The run's checkpoints (layout: mvhybrid_jax/checkpoints.py): the train state, the data
  iterator, the config."""

  def __init__(self, workdir, config):
    self.config = config
    self.manager = checkpoints.run_manager(workdir, max_to_keep=config.keep_checkpoints)

  def latest_step(self):
    return self.manager.latest_step()

  def save(self, step, state, data_iter):
    checkpoints.save_run(self.manager, step, state, grain.checkpoint.CheckpointSave(data_iter),
                         self.config.to_dict())

  def restore(self, step, state, data_iter):
    """Restores into state (same shardings) and data_iter, in place, after checking that the
    saved run's model is this config's (orbax's own error for a shape mismatch is buried)."""
    folder = self.manager.directory
    saved = checkpoints.run_config(self.manager, step)
    for key in STATE_KEYS:
      was, now = saved.get(key), self.config.get(key)
      now = now.to_dict() if hasattr(now, "to_dict") else now
      if key == "model":  # how the model runs may change on a resume; its shapes may not
        was, now = ({k: v for k, v in models.resolve(m).items()
                     if k not in RUNTIME_MODEL_KEYS} for m in (was, now))
      if was != now:
        raise ValueError(f"config.{key}: {folder} holds a run with {key}={was}, not {now}; "
                         "resume it with its own settings, or use another --workdir")
    try:
      checkpoints.restore_run(self.manager, step, state,
                              grain.checkpoint.CheckpointRestore(data_iter))
    except (ValueError, KeyError) as e:
      raise ValueError(f"{folder}: step {step} does not fit this config's training state "
                       f"({str(e).splitlines()[0][:300]})") from e

  def close(self):
    self.manager.close()


def _any_host(*flags: bool) -> tuple[bool, ...]:
  """Each flag, true if it is on any host: all hosts must agree to save the same step together
  (a signal) or to stop together (too many unreadable records)."""
  if jax.process_count() == 1:
    return flags
  return tuple(multihost_utils.process_allgather(np.array(flags, np.int32)).max(0).astype(bool))


def train(config, workdir: str, *, max_steps: int | None = None) -> dict:
  """Runs (or resumes) the pretraining in workdir; returns the last metrics. max_steps stops
  early (for tests); the schedules still follow the config's full length.

  Raises Preempted after saving when SIGTERM/SIGINT arrive, FloatingPointError when the run
  diverges (nothing non-finite is saved), ValueError for a bad config or too many unreadable
  records, workdir.Busy when another run holds the workdir."""
  checks.check(config)
  hosts, devices = jax.process_count(), jax.device_count()
  if config.batch_size % devices:
    raise ValueError(f"config.batch_size: {config.batch_size} must divide over the {devices} "
                     f"devices of {hosts} host(s)")
  crops = crop_config(config.crops)
  source = image_source(config)
  os.makedirs(workdir, exist_ok=True)
  chief = jax.process_index() == 0
  with (workdir_lib.Lock(workdir) if chief else contextlib.nullcontext()):
    return _train(config, workdir, source, crops, max_steps)


def _train(config, workdir, source, crops, max_steps):
  total = step_lib.epoch_steps(config)
  mesh = sharding.make_mesh(config.mesh.data, config.mesh.fsdp)
  hosts = jax.process_count()
  ds = pipeline.pretrain_dataset(source, batch_size=config.batch_size // hosts,
                                 seed=config.seed, crops=crops,
                                 patch_size=step_lib.patch_size(config),
                                 num_workers=config.data.num_workers)
  data_iter = iter(ds)
  graphdef, state, shardings = step_lib.sharded_state(config, mesh)
  batch_sharding = sharding.batch_sharding(mesh)
  step_fn = step_lib.make_step(config, graphdef, shardings, batch_sharding)

  ckpt = Checkpoints(workdir, config)
  start = ckpt.latest_step() or 0
  if start:
    ckpt.restore(start, state, data_iter)
    log.info("resumed from step %d", start)

  chief = jax.process_index() == 0
  metrics_path = os.path.join(workdir, "metrics.jsonl")
  if chief:
    workdir_lib.keep_steps_up_to(metrics_path, start)
  records = len(source) // hosts
  skipped = workdir_lib.SkippedRecords(
      os.path.join(workdir, "skipped_records.jsonl" if hosts == 1
                   else f"skipped_records.{jax.process_index()}.jsonl"),
      source.describe, int(config.data.max_skipped_fraction * records), start)
  signalled = {"signal": None}
  handlers = {s: signal.signal(s, lambda sig, _: signalled.update(signal=sig))
              for s in (signal.SIGTERM, signal.SIGINT)}
  momentum, temp = step_lib.teacher_schedules(config)
  lr = step_lib.learning_rate(config)
  max_entropy = ssl.max_entropy(config.heads.prototypes)
  end = min(total, max_steps) if max_steps is not None else total
  metrics = {}
  try:
    with (open(metrics_path, "a") if chief else open(os.devnull, "w")) as out, \
        SummaryWriter(os.path.join(workdir, "tensorboard"), write_to_disk=chief,
                      purge_step=start + 1 if start else None) as board, \
        tqdm(total=end, initial=start, desc="pretraining", unit="step",
             disable=not chief) as bar:
      t0, since = time.perf_counter(), 0
      for step in range(start, end):
        batch = next(data_iter)
        skipped.add(step + 1, batch.pop("skipped"))
        state, loss, terms = step_fn(state, sharding.global_batch(batch, batch_sharding))
        finite = terms.pop("state_finite")
        since += 1
        stop, too_many_skipped = _any_host(signalled["signal"] is not None, skipped.over_limit())
        if too_many_skipped:
          raise skipped.error("config.data.max_skipped_fraction", records) \
              if skipped.over_limit() else ValueError("config.data.max_skipped_fraction: "
                                                      "another host met too many unreadable "
                                                      "records (see its log)")
        logging_now = (step + 1) % config.log_every == 0 or step + 1 == end
        saving_now = (step + 1) % config.checkpoint_every == 0 or step + 1 == end or stop
        if logging_now or saving_now:  # never log or save a diverged state
          loss = float(loss)
          last = ckpt.latest_step()
          last = f"step {last}" if last else "none (no checkpoint was saved)"
          if not math.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {loss} at step {step + 1}; the last good "
                                     f"checkpoint is {last}")
          if not bool(finite):
            raise FloatingPointError(
                f"step {step + 1} left non-finite weights (its loss, computed before the "
                f"update, was {loss:.4g}; lower config.base_lr?); the last good checkpoint is "
                f"{last}")
        if logging_now:
          dt = time.perf_counter() - t0
          metrics = dict(step=step + 1, loss=loss, **{k: float(v) for k, v in terms.items()},
                         target_entropy_max=max_entropy, lr=float(lr(step)),
                         teacher_temp=float(temp(step)), momentum=float(momentum(step)),
                         images_per_s=config.batch_size * since / dt,
                         skipped_records=len(skipped))
          out.write(json.dumps(metrics) + "\n")
          out.flush()
          for key, value in metrics.items():
            if key != "step":
              board.add_scalar(f"train/{key}", value, step + 1)
          bar.set_postfix(loss=f"{loss:.3f}", H=f"{metrics['target_entropy_cls']:.2f}"
                          f"/{max_entropy:.2f}", rank=f"{metrics['student_rank']:.1f}",
                          img_s=f"{metrics['images_per_s']:.1f}")
          t0, since = time.perf_counter(), 0
        bar.update(1)
        if saving_now:
          t_save = time.perf_counter()
          ckpt.save(step + 1, state, data_iter)
          t0 += time.perf_counter() - t_save  # images/s counts training only
        if stop:
          raise Preempted(f"signal {signal.Signals(signalled['signal']).name}: saved step "
                          f"{step + 1} in {ckpt.manager.directory}; run the same command to "
                          "resume")
    checkpoints.save_backbone(os.path.join(workdir, checkpoints.TEACHER_EXPORT),
                              nnx.merge(graphdef, state).teacher.backbone, config.model)
  finally:
    for s, h in handlers.items():
      signal.signal(s, h)
    ckpt.close()
    if chief and metrics:  # the curves of a stopped run too (a diverged one: how it went)
      try:
        plots.loss_curves(metrics_path, os.path.join(workdir, "loss.png"))
      except Exception as e:  # a figure must never hide why the run stopped
        log.warning("loss.png not written: %s", e)
  return metrics
