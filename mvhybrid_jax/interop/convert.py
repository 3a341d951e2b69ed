"""Converts backbones between PyTorch files and this project's exported backbones.

  python -m mvhybrid_jax.interop.convert mv_hybrid.pth runs/mv_hybrid_jax --arch mvhybrid
  python -m mvhybrid_jax.interop.convert dinov2_vits16.pth runs/vit --arch vit_12
  python -m mvhybrid_jax.interop.convert runs/mvhybrid out.safetensors   # a workdir or an export

PyTorch -> JAX when IN is a file (.pth/.pt/.bin, .safetensors, .npz): OUT is an exported backbone
(a folder that eval.py and checkpoints.load_backbone read). JAX -> PyTorch when IN is a folder
(a train.py workdir, whose latest teacher is taken, or an exported backbone): OUT is a
.safetensors (or .npz) file with the release's or DINOv2's key names.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys

from mvhybrid_jax import checkpoints, models
from mvhybrid_jax.interop import files, state_dict


def _setting(text: str):
  key, sep, value = text.partition("=")
  if not sep:
    raise argparse.ArgumentTypeError(f"--set: expected key=value, got {text!r}")
  try:
    return key, ast.literal_eval(value)
  except (ValueError, SyntaxError):
    return key, value


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("input")
  p.add_argument("output")
  p.add_argument("--arch", choices=models.names(),
                 help="the backbone (required for PyTorch -> JAX)")
  p.add_argument("--which", default="teacher", choices=["teacher", "student"],
                 help="which half of a DINOv2 training checkpoint")
  p.add_argument("--set", type=_setting, action="append", default=[], metavar="KEY=VALUE",
                 help="a models.create setting, over what the state dict implies")
  p.add_argument("--non_strict", action="store_true",
                 help="load matching keys, keep initial values for missing ones")
  args = p.parse_args(argv)
  if os.path.isdir(args.input):
    model, settings = checkpoints.load_backbone(args.input)
    if args.arch and args.arch != settings["name"]:
      p.error(f"--arch {args.arch}: {args.input} holds a {settings['name']}")
    sd = state_dict.export_state_dict(model)
    files.save(sd, args.output)
    print(f"wrote {len(sd)} tensors ({settings['name']}) to {args.output}")
    return
  if not args.arch:
    p.error("--arch: needed to read a PyTorch checkpoint")
  sd, settings = state_dict.import_settings(args.arch, files.load(args.input), args.which,
                                            **dict(args.set))
  model = state_dict.import_state_dict(args.arch, sd, strict=not args.non_strict, **settings)
  checkpoints.save_backbone(args.output, model, {"name": args.arch, **settings})
  print(f"wrote {args.arch} ({models.count_params(model):,} parameters, {settings}) to "
        f"{args.output}")


if __name__ == "__main__":
  sys.exit(main())
