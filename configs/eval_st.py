"""Gene expression from H&E (spec section 4): HEST's ridge probe on frozen embeddings, random
10-fold vs leave-one-study-out.

  python eval.py --config=configs/eval_st.py:smoke --workdir=/tmp/eval_st        # CPU, a minute
  python eval.py --config=configs/eval_st.py --workdir=runs/eval_st \\
      --config.checkpoint=runs/mvhybrid,runs/vit_12,random
  python eval.py --config=configs/eval_st.py --workdir=runs/hest \\
      --config.checkpoint=runs/mvhybrid --config.data.dir=hest_data \\
      --config.data.metadata_csv=hest_data/HEST_v1_1_0.csv --config.data.criterion=hmhvg \\
      --config.data.where=organ=Bowel,species="Homo sapiens" --config.data.skip_missing=True

config.checkpoint: comma-separated train.py workdirs, exported backbones, PyTorch checkpoint
files (read as config.model.name) or "random" (config.model, randomly initialised).
config.data.ids: comma-separated sample ids or a text file of them (empty: every row of the CSV);
config.data.where: column=value filters on the CSV, comma-separated, alternatives with |.
"""

import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.task = "st"
  c.seed = 0
  c.checkpoint = "random"
  c.model = common.eval_model()
  c.data = ml_collections.ConfigDict(dict(
      dir="", metadata_csv="", id_col="id", study_col="dataset_title", patient_col="patient",
      ids="", where="", skip_missing=False,
      k=200, criterion="hvg", genes_json="", synthetic_config="default",
      mpp=0.5))  # microns per pixel the patches are read at (HEST's and the synthetic ones: 0.5)
  c.protocols = ("random", "loso")  # and "patient" (HEST-Benchmark's patient-wise k-fold)
  c.folds = 10                      # random and patient protocols; loso has one per study
  c.probe = ml_collections.ConfigDict(dict(
      pca=256, alpha=ml_collections.config_dict.placeholder(float)))  # None: HEST's rule
  c.embedding = "cls+mean"
  c.batch_size = 64
  c.save_probes = True  # each backbone's probe, refitted on all spots: WORKDIR/probes/, for predict.py
  if arg in ("smoke", "demo"):  # a tiny MV_Hybrid on the smoke or demo slides (make demo)
    c.model.update(dim=32, depth=2, num_heads=2, patch_size=8 if arg == "demo" else 16)
    c.data.synthetic_config = arg
    c.folds = 4 if arg == "smoke" else 6
  elif arg:
    raise ValueError(f"config variant: expected '', 'smoke' or 'demo', got {arg!r}")
  return c
