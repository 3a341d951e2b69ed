"""ViT_24 (DINOv2 ViT-S/16, depth 24) pretrained exactly as MV_Hybrid: the paper's baseline.

  python train.py --config=configs/vit_24_crc.py --workdir=runs/vit_24
  python train.py --config=configs/vit_24_crc.py:smoke --workdir=/tmp/vit_24_smoke   # CPU

configs/pretrain.py:vit_24: everything but the backbone is MV_Hybrid's recipe, so the comparison
is fair.
"""

import ml_collections

from configs import pretrain


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  return pretrain.get_config("vit_24" + (f",{arg}" if arg else ""))
