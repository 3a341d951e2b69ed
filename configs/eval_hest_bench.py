"""HEST-Benchmark's own tasks (IDC, PRAD, PAAD, SKCM, COAD, READ, CCRCC, HCC, LUNG, LYMPH_IDC):
their splits and 50-gene lists as shipped, HEST's probe per split, the leaderboard's table.

  python eval.py --config=configs/eval_hest_bench.py --workdir=runs/hest_bench \\
      --config.bench_dir=bench_data --config.checkpoint=runs/mvhybrid,random
  python eval.py --config=configs/eval_hest_bench.py --workdir=runs/coad \\
      --config.bench_dir=bench_data --config.tasks=COAD,READ --config.checkpoint=runs/mvhybrid

config.bench_dir: HEST-Benchmark's data folder (bench_data from MahmoodLab/hest-bench, a folder per
task with splits/, patches/, adata/ and var_50genes.json) or one task's folder.
config.tasks: comma-separated task folder names (empty: every task found).
"""

import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  if arg:
    raise ValueError(f"config variant: expected none, got {arg!r}")
  c = ml_collections.ConfigDict()
  c.task = "hest_bench"
  c.seed = 1  # HEST-Benchmark's default (benchmark.py): the PCA's random_state
  c.checkpoint = "random"
  c.model = common.eval_model()
  c.bench_dir = ""
  c.tasks = ""
  c.mpp = 0.5  # microns per pixel the patches are read at (HEST-Benchmark's: 224 px at 0.5)
  c.probe = ml_collections.ConfigDict(dict(
      pca=256, alpha=ml_collections.config_dict.placeholder(float)))  # None: HEST's rule
  c.embedding = "cls+mean"
  c.batch_size = 64
  return c
