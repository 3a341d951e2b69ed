"""Survival from slide embeddings: a ridge-penalised Cox model and an unsupervised GMM risk
grouping on each slide's mean patch embedding, and attention-MIL (ABMIL) on the patches; 5-fold CV
over slides, concordance index.

  python eval.py --config=configs/eval_survival.py:smoke --workdir=/tmp/eval_survival
  python eval.py --config=configs/eval_survival.py --workdir=runs/tcga_crc \\
      --config.checkpoint=runs/mvhybrid,random --config.data.slides_dir=tiles/ \\
      --config.data.clinical_csv=clinical.csv

config.data.slides_dir: one <slide_id>.array_record of tiles per slide (data.wsi.tile_slide);
clinical_csv: slide id, time and event columns (names below). Empty: the synthetic slides.
"""

import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.task = "survival"
  c.seed = 0
  c.checkpoint = "random"
  c.model = common.eval_model()
  c.data = ml_collections.ConfigDict(dict(
      slides_dir="", clinical_csv="", id_col="slide_id", time_col="time", event_col="event",
      synthetic_config="default"))
  c.methods = ("cox", "gmm", "abmil")
  c.folds = 5
  c.pca = 8  # components of the slide embeddings before either model (few slides)
  c.embedding = "cls+mean"
  c.batch_size = 64
  if arg == "smoke":
    c.model.update(dim=32, depth=2, num_heads=2)
    c.data.synthetic_config = "smoke"
  elif arg:
    raise ValueError(f"config variant: expected '' or 'smoke', got {arg!r}")
  return c
