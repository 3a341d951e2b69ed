"""ViT_12 (DINOv2 ViT-S/16, depth 12) pretrained exactly as MV_Hybrid: the paper's baseline.

  python train.py --config=configs/vit_12_crc.py --workdir=runs/vit_12
  python train.py --config=configs/vit_12_crc.py:smoke --workdir=/tmp/vit_12_smoke   # CPU

configs/pretrain.py:vit_12: everything but the backbone is MV_Hybrid's recipe, so the comparison
is fair.
"""

import ml_collections

from configs import pretrain


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  return pretrain.get_config("vit_12" + (f",{arg}" if arg else ""))
