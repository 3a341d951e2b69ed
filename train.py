"""DINOv2 pretraining of the backbones.

  python train.py --config=configs/mvhybrid_crc.py:smoke --workdir=/tmp/mvhybrid_smoke
  python train.py --config=configs/mvhybrid_crc.py --workdir=runs/mvhybrid --config.batch_size=512

Multi-host (docs/multihost.md): the same command on every host, with --coordinator_address,
--num_processes and --process_id, or under srun / mpirun, which are detected.
"""

from absl import flags, logging
from ml_collections import config_flags

from mvhybrid_jax import cli
from mvhybrid_jax.train import distributed, trainer

config_flags.DEFINE_config_file("config", None, "Config file, with an optional :variant.",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Where checkpoints and metrics go; a run resumes there.")
flags.DEFINE_string("coordinator_address", None, "Multi-host: host:port of process 0.")
flags.DEFINE_integer("num_processes", None, "Multi-host: the number of processes.")
flags.DEFINE_integer("process_id", None, "Multi-host: this process's index.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  logging.set_verbosity(logging.INFO)
  logging.get_absl_handler().addFilter(cli.QuietOrbax())
  f = flags.FLAGS
  distributed.initialize(f.coordinator_address, f.num_processes, f.process_id)
  metrics = trainer.train(f.config, f.workdir)
  logging.info("done: %s", metrics)


if __name__ == "__main__":
  cli.run(main)
