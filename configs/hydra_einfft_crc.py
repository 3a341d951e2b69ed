"""Hydra_EinFFT (Hydra mixers + EinFFT) pretrained exactly as MV_Hybrid: one of the paper's comparisons.

  python train.py --config=configs/hydra_einfft_crc.py --workdir=runs/hydra_einfft
  python train.py --config=configs/hydra_einfft_crc.py:smoke --workdir=/tmp/hydra_einfft_smoke   # CPU

configs/pretrain.py:hydra_einfft: everything but the backbone is MV_Hybrid's recipe, so the comparison
is fair.
"""

import ml_collections

from configs import pretrain


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  return pretrain.get_config("hydra_einfft" + (f",{arg}" if arg else ""))
