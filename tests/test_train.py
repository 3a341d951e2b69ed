"""train.py's command line: config errors fail at once and name the flag."""

import os
import subprocess
import sys

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
