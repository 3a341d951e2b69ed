"""train.py's command line: config errors fail at once and name the flag."""

import os
import subprocess
import sys

from mvhybrid_jax import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*args):
  return subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=300)


def test_unknown_key_and_variant(tmp_path):
  workdir = tmp_path / "run"
  out = run("--config=configs/mvhybrid_crc.py:smoke", f"--workdir={workdir}",
            "--config.model.dimm=8")
  assert out.returncode != 0
  assert "--config.model.dimm=8: the config has no key 'dimm'" in out.stderr
  assert 'Did you mean "dim"' in out.stderr
  out = run("--config=configs/mvhybrid_crc.py:smok", f"--workdir={workdir}")
  assert out.returncode != 0 and "config variant: expected '', 'smoke' or 'demo', got 'smok'" in out.stderr
  assert not workdir.exists()


def test_a_bad_value_fails_in_one_line_before_compiling(tmp_path):
  out = run("--config=configs/mvhybrid_crc.py:smoke", f"--workdir={tmp_path / 'run'}",
            "--config.log_every=0")
  assert out.returncode == cli.REFUSED
  assert out.stderr.strip().splitlines()[-1] == "FATAL: config.log_every: expected an integer >= 1, got 0"
  assert "Traceback" not in out.stderr


def test_exit_codes():
  """What a scheduler reads: 75 resumable, 3 diverged, 2 refused, 1 crashed; a full disk however
  deep orbax chains it is one line."""
  import errno

  from mvhybrid_jax.train import trainer, workdir
  assert cli.exit_code(trainer.Preempted("signal SIGTERM: saved step 2"))[0] == 75
  assert cli.exit_code(FloatingPointError("non-finite loss"))[0] == cli.DIVERGED == 3
  assert cli.exit_code(ValueError("config.x: bad")) == (cli.REFUSED, "config.x: bad")
  assert cli.exit_code(workdir.Busy("held"))[0] == cli.REFUSED
  try:
    try:
      raise OSError(errno.ENOSPC, "No space left on device", "/runs/x/checkpoints/6")
    except OSError as e:
      raise RuntimeError("orbax: commit failed") from e
  except RuntimeError as e:
    code, message = cli.exit_code(e)
  assert code == cli.CRASHED and message.startswith("no space left on device")
  assert cli.exit_code(KeyError("a bug"))[0] == cli.CRASHED  # a bug: its traceback is shown


def test_preempted_exits_75_and_verbose_shows_the_traceback(tmp_path):
  script = ("from mvhybrid_jax import cli\n"
            "from mvhybrid_jax.train import trainer\n"
            "def main(argv):\n"
            "  raise trainer.Preempted('signal SIGTERM: saved step 2 in W; run the same command')\n"
            "cli.run(main)\n")
  for verbose in (False, True):
    out = subprocess.run([sys.executable, "-c", script] + (["--verbose"] if verbose else []),
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == cli.PREEMPTED == 75
    assert out.stderr.strip().splitlines()[-1] == ("preempted: signal SIGTERM: saved step 2 in "
                                                   "W; run the same command")
    assert ("Traceback" in out.stderr) == verbose
