"""The backbones an evaluation compares, from config.checkpoint: "random" (a random-init baseline),
a train.py workdir (its latest teacher), an exported backbone, or a PyTorch checkpoint file (.pth,
.safetensors, .npz; read as config.model.name).

"random" is config.model, except beside workdirs or exports that share one architecture: then it
is that architecture, randomly initialised, so that the comparison asks only what pretraining
added (config.model may still name another backbone)."""

from __future__ import annotations

import logging
import os

from flax import nnx

from mvhybrid_jax import checkpoints, interop, models

log = logging.getLogger(__name__)


def specs(text: str) -> list[str]:
  """config.checkpoint: one or more, comma-separated."""
  out = [s.strip() for s in str(text).split(",") if s.strip()]
  if not out:
    raise ValueError("config.checkpoint: expected 'random', a workdir, an exported backbone or a "
                     "checkpoint file (several: comma-separated)")
  return out


def random_config(all_specs: list[str], model_config) -> dict:
  """The settings "random" gets among all_specs: the architecture of the folder checkpoints when
  they share one, else model_config."""
  found = [checkpoints.read_settings(s) for s in all_specs if s != "random" and os.path.isdir(s)]
  if found and all(f == found[0] for f in found):
    log.info("random: the architecture of the checkpoints it is compared with: %s", found[0])
    return found[0]
  return models.given(model_config)


def compared(config):
  """(spec, label, model, settings) for each backbone of config.checkpoint, in turn."""
  all_specs = specs(config.checkpoint)
  random_settings = random_config(all_specs, config.model) if "random" in all_specs else None
  for spec in all_specs:
    yield (spec, *load(spec, random_settings if spec == "random" else config.model,
                       config.seed))


def load(spec: str, model_config, seed: int = 0):
  """(label, model in eval mode, settings) for one spec."""
  if spec == "random":
    settings = models.given(model_config)
    model = models.from_settings(settings, rngs=nnx.Rngs(seed))
    label = f"random {settings['name']}"
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
