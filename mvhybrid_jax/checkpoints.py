"""Backbones on disk for evaluation: an exported backbone, or the teacher of a train.py workdir.

An exported backbone is an orbax checkpoint folder with two items: "model" (JSON: the name and
settings models.create takes, e.g. {"name": "mvhybrid", "dim": 384, ...}) and "params" (the
backbone's nnx.Param state as a nested dict). train.py writes the teacher's backbone this way to
workdir/teacher_backbone at the end of a run.

    model, settings = checkpoints.load_backbone("runs/mvhybrid")   # a workdir: the latest teacher
    model, settings = checkpoints.load_backbone("runs/mvhybrid/teacher_backbone")
"""

from __future__ import annotations

import os

import orbax.checkpoint as ocp
from flax import nnx

from mvhybrid_jax import models


def _create(settings: dict):
  settings = dict(settings)
  name = settings.pop("name")
  model = models.create(name, rngs=nnx.Rngs(0), **settings)
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
    return _load_workdir(os.path.join(path, "checkpoints"), step)
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
  folder = os.path.join(path, "checkpoints")
  if os.path.isdir(folder):
    with ocp.CheckpointManager(folder, item_names=("config",)) as manager:
      step = manager.latest_step()
      if step is None:
        raise ValueError(f"checkpoint: {folder} holds no checkpoint yet")
      restored = manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
    return dict(restored["config"]["model"])
  if not os.path.isdir(os.path.join(path, "params")):
    raise ValueError(f"checkpoint: {path} is neither an exported backbone (a folder with params/ "
                     "and model/) nor a train.py workdir (a folder with checkpoints/)")
  with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
    return dict(checkpointer.restore(path, ocp.args.Composite(
        model=ocp.args.JsonRestore()))["model"])


def _load_workdir(folder: str, step: int | None = None):
  with ocp.CheckpointManager(folder, item_names=("teacher", "config")) as manager:
    if step is None:
      step = manager.latest_step()
      if step is None:
        raise ValueError(f"checkpoint: {folder} holds no checkpoint yet")
    elif step not in manager.all_steps():
      raise ValueError(f"checkpoint: {folder} has no step {step}; it holds "
                       f"{sorted(manager.all_steps())}")
    config = manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))["config"]
    model = _create(config["model"])
    target = {"backbone": _params(model)}
    restored = manager.restore(step, args=ocp.args.Composite(teacher=ocp.args.PyTreeRestore(
        item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target),
        partial_restore=True)))
  _load_params(model, restored["teacher"]["backbone"])
  return model, dict(config["model"])
