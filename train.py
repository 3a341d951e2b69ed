"""DINOv2 pretraining of the backbones.

  python train.py --config=configs/mvhybrid_crc.py:smoke --workdir=/tmp/mvhybrid_smoke
  python train.py --config=configs/mvhybrid_crc.py --workdir=runs/mvhybrid --config.batch_size=512
"""

from absl import app, flags, logging
from ml_collections import config_flags

from mvhybrid_jax.train import trainer

config_flags.DEFINE_config_file("config", None, "Config file, with an optional :variant.",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Where checkpoints and metrics go; a run resumes there.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  logging.set_verbosity(logging.INFO)
  metrics = trainer.train(flags.FLAGS.config, flags.FLAGS.workdir)
  logging.info("done: %s", metrics)


if __name__ == "__main__":
  app.run(main)
