"""The backbones an evaluation compares, from config.checkpoint: "random" (a random-init baseline
of config.model), a train.py workdir (its latest teacher), an exported backbone, or a PyTorch
checkpoint file (.pth, .safetensors, .npz; read as config.model.name)."""

from __future__ import annotations

import os

from flax import nnx

from mvhybrid_jax import checkpoints, interop, models


def specs(text: str) -> list[str]:
  """config.checkpoint: one or more, comma-separated."""
  out = [s.strip() for s in str(text).split(",") if s.strip()]
  if not out:
    raise ValueError("config.checkpoint: expected 'random', a workdir, an exported backbone or a "
                     "checkpoint file (several: comma-separated)")
  return out


def load(spec: str, model_config, seed: int = 0):
  """(label, model in eval mode, settings) for one spec."""
  if spec == "random":
    settings = dict(model_config)
    name = settings.pop("name")
    model = models.create(name, rngs=nnx.Rngs(seed), **settings)
    label = f"random {name}"
  elif os.path.isdir(spec):
    model, settings = checkpoints.load_backbone(spec)
    label = os.path.basename(os.path.normpath(spec))
  elif os.path.isfile(spec):
    name = model_config["name"]
    model = interop.import_state_dict(name, interop.load(spec))
    settings = {"name": name}
    label = os.path.basename(spec)
  else:
    raise ValueError(f"config.checkpoint: {spec!r} is not 'random', a folder (a train.py workdir "
                     "or an exported backbone) or a checkpoint file")
  model.eval()
  return label, model, {"name": settings.get("name", model_config["name"]), **settings}
