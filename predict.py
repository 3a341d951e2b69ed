"""Gene-expression maps of a whole slide from a trained backbone and a saved probe.

  python predict.py --config=configs/predict.py:smoke --workdir=runs/smoke_predict
  python predict.py --config=configs/predict.py --workdir=runs/maps --config.slide=slide.svs \\
      --config.probe=runs/eval/probes/mvhybrid.npz --config.genes=EPCAM,COL1A1
"""

import sys

from absl import flags, logging
from ml_collections import config_flags

from mvhybrid_jax import cli, predict

config_flags.DEFINE_config_file("config", None, "Config file, with an optional :variant.",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Where predictions.h5ad, maps/ and summary.md go.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  logging.set_verbosity(logging.INFO)
  logging.get_absl_handler().addFilter(cli.QuietOrbax())
  try:
    result = predict.run(flags.FLAGS.config, flags.FLAGS.workdir)
  except ValueError as e:
    sys.exit(f"FATAL: {e}")
  with open(result["summary"]) as f:
    print(f.read())


if __name__ == "__main__":
  cli.run(main)
