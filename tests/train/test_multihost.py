"""Two processes on 127.0.0.1 run the smoke pretraining together through jax.distributed."""

import json
import os
import socket
import subprocess
import sys

import pytest

from mvhybrid_jax.train import distributed

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_processes_train_together(tmp_path):
  workdir = tmp_path / "run"
  env = {**os.environ, "PYTHONPATH": ROOT, "MVHYBRID_DATA_DIR": str(tmp_path / "data")}
  for name in ("SLURM_NTASKS", "SLURM_STEP_NUM_TASKS", "OMPI_COMM_WORLD_SIZE",
               "JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
    env.pop(name, None)
  port = free_port()
  cmd = lambda i: [sys.executable, os.path.join(ROOT, "train.py"),
                   "--config=" + os.path.join(ROOT, "configs/mvhybrid_crc.py:smoke"),
                   f"--workdir={workdir}", f"--coordinator_address=127.0.0.1:{port}",
                   "--num_processes=2", f"--process_id={i}", "--config.steps_per_epoch=2",
                   "--config.epochs=2", "--config.checkpoint_every=2", "--config.log_every=1",
                   "--config.crops.n_local=1"]
  logs = [open(tmp_path / f"log{i}.txt", "w") for i in range(2)]
  procs = [subprocess.Popen(cmd(i), cwd=tmp_path, env=env, stdout=logs[i],
                            stderr=subprocess.STDOUT) for i in range(2)]
  try:
    codes = [p.wait(timeout=600) for p in procs]
  finally:
    for p in procs:
      p.kill()
  text = [open(tmp_path / f"log{i}.txt").read() for i in range(2)]
  assert codes == [0, 0], "\n".join(t[-3000:] for t in text)
  for i in range(2):
    assert f"process {i} of 2; 1 local of 2 devices" in text[i]
  # Process 0 alone writes metrics; the loss is the same global number on both.
  steps = [json.loads(l) for l in open(workdir / "metrics.jsonl")]
  assert [s["step"] for s in steps] == [1, 2, 3, 4]
  assert all(f"'loss': {steps[-1]['loss']}" in t for t in text)
  # Collective checkpoints, with each host's data iterator state.
  for step in ("2", "4"):
    data = sorted(os.listdir(workdir / "checkpoints" / step / "data"))
    assert "process_0-of-2.json" in data and "process_1-of-2.json" in data
  assert (workdir / "teacher_backbone" / "params").is_dir()


def test_flags_go_together(monkeypatch):
  for name in ("SLURM_NTASKS", "SLURM_STEP_NUM_TASKS", "OMPI_COMM_WORLD_SIZE",
               "JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
    monkeypatch.delenv(name, raising=False)
  assert distributed.initialize() is False  # single process: nothing to join
  with pytest.raises(ValueError, match="--coordinator_address, --num_processes and --process_id"):
    distributed.initialize("127.0.0.1:1234")
  monkeypatch.setenv("JAX_NUM_PROCESSES", "two")
  with pytest.raises(ValueError, match="JAX_NUM_PROCESSES: expected an integer"):
    distributed.initialize()
  monkeypatch.delenv("JAX_NUM_PROCESSES")
  monkeypatch.setenv("SLURM_NTASKS", "1")  # a one-task SLURM job is a single process
  assert distributed.cluster_tasks() == 1 and distributed.initialize() is False
