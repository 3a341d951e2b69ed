"""The workdir's lock, its logs kept to one row a step, and the list of skipped records."""

import json
import logging
import os
import socket
import subprocess
import sys

import pytest

from mvhybrid_jax.train import workdir


def write_lock(folder, **holder):
  with open(os.path.join(folder, workdir.LOCK), "w") as f:
    json.dump({"host": socket.gethostname(), "since": "2026-12-01 10:00:00", **holder}, f)


def test_one_writer_and_the_lock_is_released(tmp_path):
  with workdir.Lock(str(tmp_path)):
    held = json.load(open(tmp_path / workdir.LOCK))
    assert held["pid"] == os.getpid() and held["host"] == socket.gethostname()
    with pytest.raises(workdir.Busy, match=rf"another run \(pid {os.getpid()} on this host"):
      workdir.Lock(str(tmp_path)).__enter__()
  assert not (tmp_path / workdir.LOCK).exists()
  with pytest.raises(RuntimeError):  # released on an error too
    with workdir.Lock(str(tmp_path)):
      raise RuntimeError("boom")
  assert not (tmp_path / workdir.LOCK).exists()


def test_a_live_holder_is_refused_and_a_dead_one_taken_over(tmp_path, caplog):
  other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
  try:
    write_lock(str(tmp_path), pid=other.pid)
    with pytest.raises(workdir.Busy, match=rf"pid {other.pid} on this host, since 2026-12-01"):
      workdir.Lock(str(tmp_path)).__enter__()
  finally:
    other.kill()
    other.wait()
  with caplog.at_level(logging.WARNING):  # the same pid, now gone: a stale lock
    with workdir.Lock(str(tmp_path)):
      assert json.load(open(tmp_path / workdir.LOCK))["pid"] == os.getpid()
  assert f"pid {other.pid} on this host is not running" in caplog.text
  # Another host's process cannot be checked: refused, saying how to clear it.
  write_lock(str(tmp_path), pid=other.pid, host="gpu-node-7")
  with pytest.raises(workdir.Busy, match=r"on host gpu-node-7.*if that run is dead, delete"):
    workdir.Lock(str(tmp_path)).__enter__()


def test_logs_keep_each_step_once(tmp_path):
  path = str(tmp_path / "metrics.jsonl")
  with open(path, "w") as f:
    for step in (1, 2, 3, 4, 5):
      f.write(json.dumps({"step": step, "loss": float(step)}) + "\n")
    f.write('{"step": 6, "lo')  # cut short by a kill
  workdir.keep_steps_up_to(path, 3)
  assert [json.loads(l)["step"] for l in open(path)] == [1, 2, 3]
  workdir.keep_steps_up_to(str(tmp_path / "absent.jsonl"), 3)
  assert not (tmp_path / "absent.jsonl").exists()


def test_skipped_records_are_named_once_and_limited(tmp_path, caplog):
  path = str(tmp_path / "skipped.jsonl")
  describe = lambda i: f"tiles.array_record record {i}"
  skipped = workdir.SkippedRecords(path, describe, limit=1, step=0)
  with caplog.at_level(logging.WARNING):
    skipped.add(2, [(5, "OSError: image file is truncated")])
    skipped.add(9, [(5, "OSError: image file is truncated")])  # the next epoch meets it again
  assert len(skipped) == 1 and not skipped.over_limit()
  assert caplog.text.count("skipped tiles.array_record record 5: OSError") == 1
  skipped.add(12, [(7, "SyntaxError: broken PNG file")])
  assert skipped.over_limit()
  message = str(skipped.error("config.data.max_skipped_fraction", 100))
  assert ("config.data.max_skipped_fraction: 2 unreadable records is more than the 1 allowed of "
          "the 100 this host reads: tiles.array_record record 5; tiles.array_record record 7"
          ) in message and path in message
  rows = [json.loads(l) for l in open(path)]
  assert [(r["step"], r["index"]) for r in rows] == [(2, 5), (12, 7)]
  # A run resumed from step 10 forgets what it has not yet reached.
  resumed = workdir.SkippedRecords(path, describe, limit=1, step=10)
  assert len(resumed) == 1 and [json.loads(l)["index"] for l in open(path)] == [5]
