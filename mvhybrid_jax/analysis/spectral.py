"""Spectral bias of state space layers: test the paper's hypothesis on any backbone and checkpoint.

The paper credits MV_Hybrid's gains to a low-frequency bias of SSMs whose eigenvalues are negative
and real (spec section 5). Four views of it, from theory to data (analysis.theory for 1,
analysis.probing for 2 and 3, analysis.frequency for 4; this module runs them all and is the
command line):

1. Theory. A diagonal SSM with eigenvalues a_j = x_j + i y_j has the transfer function
   G(iw) = sum_j c_j b_j / (iw - a_j); the total variation of G over [B, inf) is at most
   sum_j |c_j b_j| / (B - y_j) (Yu et al., ICLR 2025). Here for the inits of
   models.mamba_vision.eigenvalue_init and for the eigenvalues a checkpoint learned.
2. Mixers. Each token mixer, linearised at an input: its token-mixing kernel ||dy_t / dx_s||^2
   and its gain to sinusoids along the token sequence (a low-pass mixer attenuates high
   frequencies), estimated with Rademacher probes through forward-mode derivatives.
3. Feature maps. The relative log amplitude of the 2-D Fourier transform of each layer's patch
   tokens, high vs low frequency by depth (Park & Kim, "How do vision transformers work?", 2022).
4. A controlled experiment. Synthetic H&E-like tiles whose "genes" follow the amplitude of a
   low-frequency, a token-scale high-frequency or a fine (sub-patch) pattern; which backbone and
   init predicts which, with HEST's ridge probe.

    python -m mvhybrid_jax.analysis.spectral --checkpoint=runs/mvhybrid,random --out=runs/spectral
    python -m mvhybrid_jax.analysis.spectral --smoke --out=/tmp/spectral      # CPU, a minute

writes theory.png, mixers.png, features.png, experiment.png and spectral.json into --out.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys

import numpy as np

from mvhybrid_jax.analysis.frequency import BANDS, frequency_dataset, frequency_experiment
from mvhybrid_jax.analysis.probing import (backbone_mixers, eigenvalue_summary, layer_spectra,
                                           synthetic_patches, user_patches)
from mvhybrid_jax.analysis.theory import theory
from mvhybrid_jax.eval import backbones as eval_backbones
from mvhybrid_jax.eval import features as eval_features
from mvhybrid_jax.models import mamba_vision
from mvhybrid_jax.models.vim import VimMixer

# --- Checkpoints and the command line ---------------------------------------------------------

SMOKE = dict(overrides=dict(depth=2, dim=32, num_heads=2), image_size=112, n_images=8, tokens=16,
             probes=2, n_spots=64, folds=3)


def backbones(specs: str, name: str, overrides: dict, a_inits: list[str], seed: int = 0) -> dict:
  """label -> model for comma-separated specs as eval.py takes them ("random", a workdir, an
  export, a PyTorch file); "random" gives one model per eigenvalue init when the backbone has
  MambaVision or Vision Mamba mixers."""
  out = {}
  for spec in eval_backbones.specs(specs):
    config = {"name": name, **overrides}
    if spec != "random":
      label, model, _ = eval_backbones.load(spec, config, seed)
      out[label] = model
      continue
    for a_init in a_inits:
      label, model, _ = eval_backbones.load(spec, {**config, "a_init": a_init}, seed)
      if not any(isinstance(b.mixer, (mamba_vision.MambaVisionMixer, VimMixer))
                 for b in model.blocks):
        out[label] = model  # the init does not apply: one model
        break
      out[f"{label} ({a_init})"] = model
  return out


def analyse(models: dict, *, image_size: int, n_images: int, tokens: int, probes: int,
            n_spots: int, folds: int, batch_size: int = 16, seed: int = 0, images: str = "",
            log=print) -> dict:
  """Every view for every backbone; numbers only (figures: analysis.figures). The feature maps
  come from `images` (a folder or list file of tiles) or, when empty, synthetic H&E patches."""
  log("theory: transfer functions and total variation")
  out = dict(theory=theory(), backbones={}, feature_images=images or "synthetic")
  patches = (user_patches(images, n_images, image_size, seed) if images
             else synthetic_patches(n_images, image_size, seed))
  data = frequency_dataset(n_spots, image_size, seed=seed)
  for label, model in models.items():
    log(f"{label}: eigenvalues, mixers, feature maps, experiment")
    feats = eval_features.extract(model, data["images"], batch_size=batch_size, desc=label)
    out["backbones"][label] = dict(
        eigenvalues=eigenvalue_summary(model),
        mixers=backbone_mixers(model, tokens=tokens, probes=probes, seed=seed),
        features=layer_spectra(model, patches, batch_size=batch_size),
        experiment=frequency_experiment(feats, data, k=folds, seed=seed))
  out["experiment_bands"] = {b: list(v) for b, v in BANDS.items()}
  return out


def _jsonable(x):
  if isinstance(x, dict):
    return {k: _jsonable(v) for k, v in x.items() if k != "kernel"}  # kernels: in the figure
  if isinstance(x, (list, tuple)):
    return [_jsonable(v) for v in x]
  if isinstance(x, np.ndarray):
    return x.tolist()
  if isinstance(x, np.generic):
    return x.item()
  return x


def write(results: dict, out: str) -> None:
  """spectral.json and the four figures, each written under a temporary name and renamed."""
  from mvhybrid_jax.analysis import figures
  os.makedirs(out, exist_ok=True)
  figures.theory(results["theory"], os.path.join(out, "theory.png"))
  figures.mixers(results["backbones"], os.path.join(out, "mixers.png"))
  figures.features(results["backbones"], os.path.join(out, "features.png"))
  figures.experiment(results["backbones"], os.path.join(out, "experiment.png"))
  tmp = os.path.join(out, "spectral.json.tmp")
  with open(tmp, "w") as f:
    json.dump(_jsonable(results), f, indent=1)
  os.replace(tmp, os.path.join(out, "spectral.json"))


def table(results: dict) -> str:
  bands = list(BANDS)
  lines = ["| backbone | mixer high/low gain by layer | SSM alone | feature dlogA at pi, last "
           "layer | " + " | ".join(f"PCC {b}" for b in bands) + " |",
           "|---|---|---|---|" + "---|" * len(bands)]
  for label, r in results["backbones"].items():
    ratios = " ".join(f"{m['high_low_ratio']:.2f}" for m in r["mixers"])
    ssm = " ".join(f"{m['ssm']['high_low_ratio']:.2f}" for m in r["mixers"] if "ssm" in m)
    pcc = " | ".join(f"{r['experiment']['pcc'][b]:.3f}" for b in bands)
    lines.append(f"| {label} | {ratios} | {ssm or '-'} | {r['features']['high'][-1]:.2f} | "
                 f"{pcc} |")
  return "\n".join(lines)


def _overrides(items: list[str]) -> dict:
  out = {}
  for item in items:
    key, sep, value = item.partition("=")
    if not sep or not key:
      raise SystemExit(f"--set: expected KEY=VALUE (a models.create setting), got {item!r}")
    try:
      out[key] = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      out[key] = value
  return out


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(prog="python -m mvhybrid_jax.analysis.spectral",
                              description=__doc__.split("\n\n")[0])
  p.add_argument("--checkpoint", default="random",
                 help="'random', a train.py workdir, an exported backbone or a PyTorch file; "
                      "several, comma-separated")
  p.add_argument("--out", required=True, help="folder for the figures and spectral.json")
  p.add_argument("--model", default="mvhybrid", help="backbone name for 'random' and files")
  p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                 help="a models.create setting for 'random' (e.g. depth=12); repeatable")
  p.add_argument("--a_inits", default=",".join(mamba_vision.A_INITS),
                 help="eigenvalue inits of the 'random' backbones, comma-separated")
  p.add_argument("--image_size", type=int, default=224)
  p.add_argument("--images", default="",
                 help="a folder (recursive) or list file of your tiles for the feature spectra; "
                      "default: synthetic H&E patches")
  p.add_argument("--n_images", type=int, default=32, help="patches for the feature spectra")
  p.add_argument("--tokens", type=int, default=64, help="sequence length for the mixer analysis")
  p.add_argument("--probes", type=int, default=8, help="Rademacher probes per mixer")
  p.add_argument("--n_spots", type=int, default=512, help="tiles of the controlled experiment")
  p.add_argument("--folds", type=int, default=5)
  p.add_argument("--batch_size", type=int, default=32)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--smoke", action="store_true", help=f"tiny settings for a quick run: {SMOKE}")
  args = p.parse_args(argv)
  overrides = _overrides(args.set)
  sizes = {k: getattr(args, k) for k in ("image_size", "n_images", "tokens", "probes", "n_spots",
                                         "folds")}
  if args.smoke:
    overrides = {**SMOKE["overrides"], **overrides}
    sizes = {k: SMOKE[k] for k in sizes}
  a_inits = [s.strip() for s in args.a_inits.split(",") if s.strip()]
  bad = sorted(set(a_inits) - set(mamba_vision.A_INITS))
  if bad or not a_inits:
    raise SystemExit(f"--a_inits: expected some of {mamba_vision.A_INITS}, got {args.a_inits!r}")
  try:
    models = backbones(args.checkpoint, args.model, overrides, a_inits, args.seed)
    results = analyse(models, batch_size=args.batch_size, seed=args.seed, images=args.images,
                      log=lambda m: print(m, file=sys.stderr), **sizes)
  except ValueError as e:
    raise SystemExit(f"error: {e}") from e
  write(results, args.out)
  print(table(results))
  return results


if __name__ == "__main__":
  main()
