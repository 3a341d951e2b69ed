"""eval.py's command line: the smoke gene-expression evaluation prints its table; bad keys fail."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*args, env=None):
  return subprocess.run([sys.executable, os.path.join(ROOT, "eval.py"), *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=600, env=env)


def test_smoke_table(tmp_path):
  env = {**os.environ, "MVHYBRID_DATA_DIR": str(tmp_path / "data")}
  out = run("--config=configs/eval_st.py:smoke", f"--workdir={tmp_path / 'eval'}", env=env)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "| random mvhybrid | mvhybrid | random |" in out.stdout
  assert "| random mvhybrid | mvhybrid | drop |" in out.stdout
  bad = run("--config=configs/eval_st.py:smoke", f"--workdir={tmp_path / 'x'}",
            "--config.probe.alphaa=1.0", env=env)
  assert bad.returncode != 0 and "the config has no key 'alphaa'" in bad.stderr
