"""The spectral-bias analysis (mvhybrid_jax.analysis.spectral): which backbones, and how much of
each view to compute.

  python -m mvhybrid_jax.analysis.spectral --config=configs/spectral.py:smoke --out=/tmp/spectral
  python -m mvhybrid_jax.analysis.spectral --config=configs/spectral.py --out=runs/spectral \\
      --config.checkpoint=runs/mvhybrid,runs/vit_12,random --config.images=my_tiles/

config.checkpoint: comma-separated train.py workdirs, exported backbones, PyTorch checkpoint
files (read as config.model.name) or "random" (config.model, one per eigenvalue init in
config.a_inits when it has MambaVision or Vision Mamba mixers).
config.images: a folder (recursive) or list file of your tiles for the feature spectra; empty:
synthetic H&E patches.
"""

import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.checkpoint = "random"
  c.model = common.eval_model()
  c.a_inits = "s4d_real,s4d_lin,random_real"  # models.mamba_vision.A_INITS, comma-separated
  c.image_size = 224
  c.images = ""
  c.n_images = 32    # patches for the feature spectra
  c.tokens = 64      # sequence length of the mixer analysis
  c.probes = 8       # Rademacher probes per mixer
  c.n_spots = 512    # tiles of the controlled experiment
  c.folds = 5
  c.batch_size = 32
  c.seed = 0
  if arg == "smoke":  # CPU, seconds: a 2-block model on small tiles
    c.model.update(dim=32, depth=2, num_heads=2)
    c.update(image_size=112, n_images=8, tokens=16, probes=2, n_spots=64, folds=3)
  elif arg:
    raise ValueError(f"config variant: expected '' or 'smoke', got {arg!r}")
  return c
