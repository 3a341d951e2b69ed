"""Patch classification on frozen embeddings: linear probe (logistic regression, L-BFGS,
C = dim * n_classes / 100) and kNN (k = 20, centred L2-normalised features); balanced accuracy,
weighted F1, AUROC.

  python eval.py --config=configs/eval_cls.py:smoke --workdir=/tmp/eval_cls         # CPU
  python eval.py --config=configs/eval_cls.py --workdir=runs/nct --config.checkpoint=runs/mvhybrid \\
      --config.data.train_path=nct100k.ar --config.data.test_path=crc_val_7k.ar

config.data.train_path / test_path: ArrayRecords packed by mvhybrid_jax.data.folders.pack (class
folders, or CSV listings such as MHIST's and UniToPatho's); empty: the synthetic nine classes.
"""

import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.task = "cls"
  c.seed = 0
  c.checkpoint = "random"
  c.model = common.eval_model()
  c.data = ml_collections.ConfigDict(dict(train_path="", test_path="",
                                          synthetic_config="default"))
  c.knn_k = 20
  c.embedding = "cls+mean"
  c.batch_size = 64
  if arg in ("smoke", "demo"):  # a tiny MV_Hybrid on the smoke or demo patches (make demo)
    c.model.update(dim=32, depth=2, num_heads=2, patch_size=8 if arg == "demo" else 16)
    c.data.synthetic_config = arg
  elif arg:
    raise ValueError(f"config variant: expected '', 'smoke' or 'demo', got {arg!r}")
  return c
