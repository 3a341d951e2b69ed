"""Converts backbones between PyTorch files and this project's exported backbones.

  python -m mvhybrid_jax.interop.convert mv_hybrid.pth runs/mv_hybrid_jax --arch mvhybrid
  python -m mvhybrid_jax.interop.convert dinov2_vits16.pth runs/vit --arch vit_12
  python -m mvhybrid_jax.interop.convert runs/mvhybrid out.safetensors   # a workdir or an export
  python -m mvhybrid_jax.interop.convert vit.pth runs/vit --arch vit_12 --model.num_heads=12

PyTorch -> JAX when IN is a file (.pth/.pt/.bin, .safetensors, .npz): OUT is an exported backbone
(a folder that eval.py and checkpoints.load_backbone read). JAX -> PyTorch when IN is a folder
(a train.py workdir, whose latest teacher is taken, or an exported backbone): OUT is a
.safetensors (or .npz) file with the release's or DINOv2's key names.
"""

from __future__ import annotations

import os
import sys

import ml_collections
from absl import flags
from ml_collections import config_flags

from mvhybrid_jax import checkpoints, models
from mvhybrid_jax.interop import files, state_dict


def model_settings() -> ml_collections.ConfigDict:
  """--model.KEY=VALUE: every models.create setting that has a typed default, unset (None)."""
  defaults = models.settings(models.names()[0])
  return ml_collections.ConfigDict({
      k: ml_collections.config_dict.placeholder(type(v)) for k, v in defaults.items()
      if k != "name" and isinstance(v, (bool, int, float, str))})


def parse(argv: list[str]) -> tuple[flags.FlagValues, str, str]:
  """(flags, input, output) from the command line (argv[0] the program)."""
  fv = flags.FlagValues()
  flags.DEFINE_enum("arch", None, models.names(), "The backbone (required for PyTorch -> JAX).",
                    flag_values=fv)
  flags.DEFINE_enum("which", "teacher", ["teacher", "student"],
                    "Which half of a DINOv2 training checkpoint.", flag_values=fv)
  flags.DEFINE_bool("non_strict", False,
                    "Load matching keys, keep initial values for missing ones.", flag_values=fv)
  try:
    config_flags.DEFINE_config_dict("model", model_settings(), "Settings over what the state "
                                    "dict implies: --model.num_heads=6.", flag_values=fv,
                                    sys_argv=argv)
    paths = fv(argv)[1:]
  except flags.Error as e:
    raise SystemExit(f"error: {e}") from e
  except (AttributeError, KeyError) as e:  # ml_collections: an unknown --model.KEY
    known = set(model_settings())
    unknown = [a.split("=")[0] for a in argv
               if a.startswith("--model.") and a.split("=")[0][len("--model."):] not in known]
    raise SystemExit(f"error: {' '.join(unknown)}: not a setting; settings are "
                     f"--model.KEY=VALUE, KEY one of {sorted(known)}") from e
  if len(paths) != 2:
    raise SystemExit(f"error: expected IN OUT (two paths), got {paths}")
  return fv, *paths


def main(argv: list[str] | None = None) -> None:
  """The command (argv without the program name)."""
  f, source, target = parse(["convert", *(sys.argv[1:] if argv is None else argv)])
  if os.path.isdir(source):
    model, settings = checkpoints.load_backbone(source)
    if f.arch and f.arch != settings["name"]:
      raise SystemExit(f"error: --arch {f.arch}: {source} holds a {settings['name']}")
    sd = state_dict.export_state_dict(model)
    files.save(sd, target)
    print(f"wrote {len(sd)} tensors ({settings['name']}) to {target}")
    return
  if not f.arch:
    raise SystemExit("error: --arch: needed to read a PyTorch checkpoint")
  sd, settings = state_dict.import_settings(f.arch, files.load(source), f.which,
                                            **models.given(f.model))
  model = state_dict.import_state_dict(f.arch, sd, strict=not f.non_strict, **settings)
  checkpoints.save_backbone(target, model, {"name": f.arch, **settings})
  print(f"wrote {f.arch} ({models.count_params(model):,} parameters, {settings}) to {target}")


if __name__ == "__main__":
  main()
