"""MV_Hybrid DINOv2 pretraining on colorectal patches: the paper's run (spec section 3), which is
configs/pretrain.py:mvhybrid under the name users run it by.

  python train.py --config=configs/mvhybrid_crc.py --workdir=runs/mvhybrid
  python train.py --config=configs/mvhybrid_crc.py:smoke --workdir=/tmp/smoke   # CPU, seconds
  python train.py --config=configs/mvhybrid_crc.py:demo --workdir=runs/demo     # CPU, minutes
  python train.py --config=configs/mvhybrid_crc.py --config.data.path=shards/ ...
"""

import ml_collections

from configs import pretrain


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  return pretrain.get_config("mvhybrid" + (f",{arg}" if arg else ""))
