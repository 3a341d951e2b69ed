"""ViM_EinFFT (Vision Mamba blocks + EinFFT) pretrained exactly as MV_Hybrid: one of the paper's comparisons.

  python train.py --config=configs/vim_einfft_crc.py --workdir=runs/vim_einfft
  python train.py --config=configs/vim_einfft_crc.py:smoke --workdir=/tmp/vim_einfft_smoke   # CPU

configs/pretrain.py:vim_einfft: everything but the backbone is MV_Hybrid's recipe, so the comparison
is fair.
"""

import ml_collections

from configs import pretrain


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  return pretrain.get_config("vim_einfft" + (f",{arg}" if arg else ""))
