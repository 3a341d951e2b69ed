"""ViM_EinFFT (Vision Mamba blocks + EinFFT) pretrained exactly as MV_Hybrid: one of the paper's comparisons.

  python train.py --config=configs/vim_einfft_crc.py --workdir=runs/vim_einfft
  python train.py --config=configs/vim_einfft_crc.py:smoke --workdir=/tmp/vim_einfft_smoke   # CPU

Everything but the backbone is configs/mvhybrid_crc.py's recipe. The backbone's sizes and their
sources: docs/backbones.md.
"""

import ml_collections

from configs import mvhybrid_crc


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = mvhybrid_crc.get_config(arg)
  c.model = ml_collections.ConfigDict(dict(
      name="vim_einfft", dim=384, depth=24, num_heads=6, d_state=16, drop_path_rate=0.0,
      remat=False, scan_impl="auto", dtype="bfloat16"))
  if arg in mvhybrid_crc.SIZES:
    c.model.update(**mvhybrid_crc.SIZES[arg], dtype="float32")
  return c
