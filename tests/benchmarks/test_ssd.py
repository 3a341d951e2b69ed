"""benchmarks/ssd.py times both impls in both modes and writes its table."""

import json

from benchmarks import ssd


def test_writes_json(tmp_path):
  out = tmp_path / "ssd.json"
  ssd.main(["--small", "--dtype", "float32", "--chunks", "16", "--reps", "1", "--out", str(out)])
  rows = json.loads(out.read_text())["rows"]
  assert [(r["mode"], r["impl"], r["chunk"]) for r in rows] == [
      ("fwd", "reference", 0), ("fwd", "chunked", 16), ("fwd+bwd", "reference", 0),
      ("fwd+bwd", "chunked", 16)]
  assert all(r["seconds"] > 0 and r["floor_s"] is None for r in rows)  # no floor on CPU
