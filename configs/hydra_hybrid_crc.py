"""Hydra_Hybrid (Hydra + EinFFT, then attention + MLP) pretrained exactly as MV_Hybrid: one of the paper's comparisons.

  python train.py --config=configs/hydra_hybrid_crc.py --workdir=runs/hydra_hybrid
  python train.py --config=configs/hydra_hybrid_crc.py:smoke --workdir=/tmp/hydra_hybrid_smoke   # CPU

configs/pretrain.py:hydra_hybrid: everything but the backbone is MV_Hybrid's recipe, so the comparison
is fair.
"""

import ml_collections

from configs import pretrain


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  return pretrain.get_config("hydra_hybrid" + (f",{arg}" if arg else ""))
