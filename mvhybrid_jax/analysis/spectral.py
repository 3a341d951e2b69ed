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
    python -m mvhybrid_jax.analysis.spectral --config=configs/spectral.py --out=runs/spectral \\
        --config.model.name=vit_12 --config.n_spots=2048

writes theory.png, mixers.png, features.png, experiment.png and spectral.json into --out. The
settings are configs/spectral.py's (ml_collections, as train.py's and eval.py's): --smoke is its
:smoke variant, --checkpoint its config.checkpoint, and any other is --config.KEY=VALUE.
"""

from __future__ import annotations

import json
import os
import sys

import ml_collections
import numpy as np
from absl import flags
from ml_collections import config_flags

from mvhybrid_jax import cli
from mvhybrid_jax.analysis.frequency import BANDS, frequency_dataset, frequency_experiment
from mvhybrid_jax.analysis.probing import (backbone_mixers, eigenvalue_summary, layer_spectra,
                                           synthetic_patches, user_patches)
from mvhybrid_jax.analysis.theory import theory
from mvhybrid_jax.eval import backbones as eval_backbones
from mvhybrid_jax.eval import features as eval_features
from mvhybrid_jax.models import given, mamba_vision
from mvhybrid_jax.models.vim import VimMixer

# --- Checkpoints -------------------------------------------------------------------------------

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


# --- The command line ----------------------------------------------------------------------------

CONFIG = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "configs",
                                      "spectral.py"))


def parse(argv: list[str]) -> tuple[ml_collections.ConfigDict, str]:
  """(config, out folder) from the command line, parsed as train.py and eval.py parse theirs:
  --config (default configs/spectral.py) with its --config.key=value overrides, and --out.
  --smoke is short for --config=configs/spectral.py:smoke, --checkpoint for --config.checkpoint."""
  smoke = "--smoke" in argv[1:]
  root = os.path.dirname(os.path.dirname(CONFIG))
  if root not in sys.path:  # configs/ beside the package, importable as train.py's folder makes it
    sys.path.append(root)
  fv = flags.FlagValues()
  with cli.named_config_keys(argv):
    config_flags.DEFINE_config_file("config", CONFIG + (":smoke" if smoke else ""),
                                    "Config file, with an optional :variant.", flag_values=fv,
                                    lock_config=True, sys_argv=argv)
    flags.DEFINE_string("out", None, "Folder for the figures and spectral.json.", flag_values=fv)
    flags.DEFINE_bool("smoke", False, "Short for --config=configs/spectral.py:smoke.",
                      flag_values=fv)
    flags.DEFINE_string("checkpoint", None, "Short for --config.checkpoint.", flag_values=fv)
    try:
      rest = fv(argv)
    except flags.Error as e:
      raise SystemExit(f"error: {e} (the settings are configs/spectral.py's: --config.KEY=VALUE)"
                       ) from e
  if len(rest) > 1:
    raise SystemExit(f"error: unexpected arguments {rest[1:]} (settings are --config.KEY=VALUE)")
  if fv.smoke != smoke or (smoke and fv["config"].present):
    raise SystemExit("error: --smoke is short for --config=configs/spectral.py:smoke; give it "
                     "alone, without a value or another --config")
  if not fv.out:
    raise SystemExit("error: --out: expected the folder for the figures and spectral.json")
  config = fv.config
  if fv.checkpoint is not None:
    config.checkpoint = fv.checkpoint
  return config, fv.out


def main(argv: list[str] | None = None) -> dict:
  """The command: every view of config.checkpoint's backbones, written to --out and summarised
  in a table (argv without the program name, as argparse took it)."""
  config, out = parse(["spectral", *(sys.argv[1:] if argv is None else argv)])
  a_inits = [s.strip() for s in config.a_inits.split(",") if s.strip()]
  bad = sorted(set(a_inits) - set(mamba_vision.A_INITS))
  if bad or not a_inits:
    raise SystemExit(f"config.a_inits: expected some of {mamba_vision.A_INITS}, comma-separated, "
                     f"got {config.a_inits!r}")
  settings = given(config.model)
  name = settings.pop("name")
  sizes = {k: config[k] for k in ("image_size", "n_images", "tokens", "probes", "n_spots",
                                  "folds")}
  try:
    backbone_models = backbones(config.checkpoint, name, settings, a_inits, config.seed)
    results = analyse(backbone_models, batch_size=config.batch_size, seed=config.seed,
                      images=config.images, log=lambda m: print(m, file=sys.stderr), **sizes)
  except ValueError as e:
    raise SystemExit(f"error: {e}") from e
  write(results, out)
  print(table(results))
  return results


if __name__ == "__main__":
  main()
