"""The checkpoint layout, written and read here alone: exported backbones and train.py workdirs.

An exported backbone is an orbax checkpoint folder with two items: "model" (JSON: the name and
settings models.create takes, e.g. {"name": "mvhybrid", "dim": 384, ...}) and "params" (the
backbone's nnx.Param state as a nested dict).

A train.py workdir holds workdir/checkpoints/<step>/ (an orbax CheckpointManager), one item per
field of the train state (STATE_ITEMS: student, teacher, optimizer, each its nnx pure dict),
"data" (grain's iterator state) and "config" (JSON; its "model" holds the backbone's settings),
and workdir/teacher_backbone, the last teacher's backbone exported as above.

    model, settings = checkpoints.load_backbone("runs/mvhybrid")   # a workdir: the latest teacher
    model, settings = checkpoints.load_backbone("runs/mvhybrid/teacher_backbone")
"""

from __future__ import annotations

import os

import orbax.checkpoint as ocp
from flax import nnx

from mvhybrid_jax import models

STATE_ITEMS = ("student", "teacher", "optimizer")  # train.step.TrainState's fields
RUN_ITEMS = STATE_ITEMS + ("data", "config")
TEACHER_EXPORT = "teacher_backbone"


def run_manager(workdir: str, items=RUN_ITEMS, max_to_keep: int | None = None):
  """The orbax CheckpointManager of a train.py workdir's checkpoints (workdir/checkpoints)."""
  return ocp.CheckpointManager(
      os.path.abspath(os.path.join(workdir, "checkpoints")),
      options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep), item_names=items)


def save_run(manager, step: int, state, data, config: dict) -> None:
  """Writes one step of a run and waits for it: the train state's fields (state: an nnx.State of
  a TrainState), data (grain.checkpoint.CheckpointSave of the iterator) and the config."""
  pure = nnx.to_pure_dict(state)
  manager.save(step, args=ocp.args.Composite(
      **{name: ocp.args.StandardSave(pure[name]) for name in STATE_ITEMS},
      data=data, config=ocp.args.JsonSave(config)), force=True)
  manager.wait_until_finished()


def restore_run(manager, step: int, state, data) -> None:
  """Restores one step into state (in place, keeping its shardings) and the data iterator (data:
  grain.checkpoint.CheckpointRestore of it)."""
  pure = nnx.to_pure_dict(state)
  restored = manager.restore(step, args=ocp.args.Composite(
      **{name: ocp.args.StandardRestore(pure[name]) for name in STATE_ITEMS}, data=data))
  nnx.replace_by_pure_dict(state, {name: restored[name] for name in STATE_ITEMS})


def run_config(manager, step: int) -> dict:
  """The config a run saved with its step, as a dict."""
  return manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))["config"]


def _create(settings: dict):
  model = models.from_settings(settings, rngs=nnx.Rngs(0))
  model.eval()
  return model


def _params(model):
  return nnx.to_pure_dict(nnx.state(model, nnx.Param))


def _load_params(model, params) -> None:
  state = nnx.state(model, nnx.Param)
  nnx.replace_by_pure_dict(state, params)
  nnx.update(model, state)


def save_backbone(path: str, backbone, settings) -> None:
  """Writes backbone's parameters and its settings ({"name": ..., **models.create overrides});
  orbax writes to a temporary folder and renames it, so a crash leaves no half-written export."""
  with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
    checkpointer.save(os.path.abspath(path), ocp.args.Composite(
        params=ocp.args.StandardSave(_params(backbone)),
        model=ocp.args.JsonSave(dict(settings))), force=True)


def load_backbone(path: str, step: int | None = None):
  """(model in eval mode, settings) from an exported backbone or a train.py workdir's checkpoint
  of the given step (default: the latest), its teacher."""
  path = os.path.abspath(path)
  if os.path.isdir(os.path.join(path, "checkpoints")):
    return _load_workdir(path, step)
  if step is not None:
    raise ValueError(f"checkpoint: {path} is an exported backbone; step={step} needs a train.py "
                     "workdir")
  if not os.path.isdir(os.path.join(path, "params")):
    raise ValueError(f"checkpoint: {path} is neither an exported backbone (a folder with params/ "
                     "and model/) nor a train.py workdir (a folder with checkpoints/)")
  with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
    settings = checkpointer.restore(path, ocp.args.Composite(model=ocp.args.JsonRestore()))["model"]
    model = _create(settings)
    restored = checkpointer.restore(path, ocp.args.Composite(
        params=ocp.args.StandardRestore(_params(model))))
  _load_params(model, restored["params"])
  return model, settings


def read_settings(path: str) -> dict:
  """The settings ({"name": ..., **models.create overrides}) of an exported backbone or a
  train.py workdir's latest checkpoint, without loading its weights."""
  path = os.path.abspath(path)
  if os.path.isdir(os.path.join(path, "checkpoints")):
    with run_manager(path, items=("config",)) as manager:
      step = manager.latest_step()
      if step is None:
        raise ValueError(f"checkpoint: {manager.directory} holds no checkpoint yet")
      return dict(run_config(manager, step)["model"])
  if not os.path.isdir(os.path.join(path, "params")):
    raise ValueError(f"checkpoint: {path} is neither an exported backbone (a folder with params/ "
                     "and model/) nor a train.py workdir (a folder with checkpoints/)")
  with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
    return dict(checkpointer.restore(path, ocp.args.Composite(
        model=ocp.args.JsonRestore()))["model"])


def _load_workdir(workdir: str, step: int | None = None):
  with run_manager(workdir, items=("teacher", "config")) as manager:
    folder = manager.directory
    if step is None:
      step = manager.latest_step()
      if step is None:
        raise ValueError(f"checkpoint: {folder} holds no checkpoint yet")
    elif step not in manager.all_steps():
      raise ValueError(f"checkpoint: {folder} has no step {step}; it holds "
                       f"{sorted(manager.all_steps())}")
    config = run_config(manager, step)
    model = _create(config["model"])
    target = {"backbone": _params(model)}
    restored = manager.restore(step, args=ocp.args.Composite(teacher=ocp.args.PyTreeRestore(
        item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target),
        partial_restore=True)))
  _load_params(model, restored["teacher"]["backbone"])
  return model, dict(config["model"])
