"""ViT_12 (DINOv2 ViT-S/16, depth 12) pretrained exactly as MV_Hybrid: the paper's baseline.

  python train.py --config=configs/vit_12_crc.py --workdir=runs/vit_12
  python train.py --config=configs/vit_12_crc.py:smoke --workdir=/tmp/vit_12_smoke   # CPU

Everything but the backbone is configs/mvhybrid_crc.py's recipe, so the comparison is fair. Drop
path 0.3 is DINOv2's default for its ViTs (spec section 2).
"""

import ml_collections

from configs import mvhybrid_crc


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = mvhybrid_crc.get_config(arg)
  c.model = ml_collections.ConfigDict(dict(
      name="vit_12", dim=384, depth=12, num_heads=6, drop_path_rate=0.3, remat=False,
      dtype="bfloat16"))
  if arg in mvhybrid_crc.SIZES:
    c.model.update(**mvhybrid_crc.SIZES[arg], dtype="float32")
  return c
