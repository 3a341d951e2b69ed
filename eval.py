"""Evaluation of backbones on the paper's tasks (spec section 4).

  python eval.py --config=configs/eval_st.py:smoke --workdir=/tmp/eval_st
  python eval.py --config=configs/eval_cls.py:smoke --workdir=/tmp/eval_cls
  python eval.py --config=configs/eval_retrieval.py:smoke --workdir=/tmp/eval_retrieval
  python eval.py --config=configs/eval_survival.py:smoke --workdir=/tmp/eval_survival
  python eval.py --config=configs/eval_hest_bench.py --workdir=/tmp/hest_bench \
      --config.bench_dir=bench_data --config.checkpoint=runs/mvhybrid,random
  python eval.py --config=configs/eval_st.py --workdir=runs/eval \\
      --config.checkpoint=runs/mvhybrid,random
"""

import sys

from absl import flags, logging
from ml_collections import config_flags

from mvhybrid_jax import cli
from mvhybrid_jax.eval import hest_bench, patches, slides, st

TASKS = {"st": st.run, "hest_bench": hest_bench.run, "cls": patches.run,
         "retrieval": patches.run, "survival": slides.run}

config_flags.DEFINE_config_file("config", None, "Config file, with an optional :variant.",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Where features, results and figures go.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  logging.set_verbosity(logging.INFO)
  logging.get_absl_handler().addFilter(cli.QuietOrbax())
  config = flags.FLAGS.config
  if config.task not in TASKS:
    sys.exit(f"FATAL: config.task: expected one of {sorted(TASKS)}, got {config.task!r}")
  TASKS[config.task](config, flags.FLAGS.workdir)
  with open(f"{flags.FLAGS.workdir}/results.md") as f:
    print(f.read())


if __name__ == "__main__":
  cli.run(main)
