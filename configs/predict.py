"""Gene-expression maps of a whole slide (predict.py), from a probe eval.py's gene-expression task
saved (WORKDIR/probes/<checkpoint>.npz) and the backbone it was fitted on.

  python predict.py --config=configs/predict.py:smoke --workdir=runs/smoke_predict   # after make demo
  python predict.py --config=configs/predict.py --workdir=runs/maps \\
      --config.slide=slide.svs --config.probe=runs/eval/probes/mvhybrid.npz \\
      --config.genes=EPCAM,COL1A1

config.slide: a pyramidal TIFF/SVS/NDPI (tiffslide) or a PNG/JPEG (then set config.slide_mpp);
empty: a synthetic slide rendered like the probe's synthetic spots, with known expression.
config.checkpoint: empty uses the one the probe records (a workdir, an export, a file or random).
config.genes: comma-separated; empty: the max_genes whose predictions vary most.
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.slide = ""
  c.slide_mpp = ml_collections.config_dict.placeholder(float)  # when the file has none
  c.probe = ""
  c.checkpoint = ""
  c.genes = ""
  c.max_genes = 8
  c.min_tissue = 0.5  # a tile's tissue fraction to be kept
  c.batch_size = 64
  c.seed = 0          # of the synthetic slide
  if arg in ("smoke", "demo"):  # the probe that eval.py's :smoke or :demo fitted on the
    c.probe = f"runs/{arg}_st/probes/{arg}.npz"  # backbone pretrained by train.py's :smoke / :demo
    c.batch_size = 16
  elif arg:
    raise ValueError(f"config variant: expected '', 'smoke' or 'demo', got {arg!r}")
  return c
