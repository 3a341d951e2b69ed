"""Hydra_EinFFT (Hydra mixers + EinFFT) pretrained exactly as MV_Hybrid: one of the paper's comparisons.

  python train.py --config=configs/hydra_einfft_crc.py --workdir=runs/hydra_einfft
  python train.py --config=configs/hydra_einfft_crc.py:smoke --workdir=/tmp/hydra_einfft_smoke   # CPU

Everything but the backbone is configs/mvhybrid_crc.py's recipe. The backbone's sizes and their
sources: docs/backbones.md.
"""

import ml_collections

from configs import mvhybrid_crc


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = mvhybrid_crc.get_config(arg)
  c.model = ml_collections.ConfigDict(dict(
      name="hydra_einfft", dim=384, depth=24, num_heads=6, d_state=64, head_dim=64,
      chunk_size=64, drop_path_rate=0.0, remat=False, dtype="bfloat16"))
  if arg in mvhybrid_crc.SIZES:
    c.model.update(**mvhybrid_crc.SIZES[arg], d_state=16, head_dim=32, dtype="float32")
  return c
