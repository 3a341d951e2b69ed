"""benchmarks/predict.py runs predict.py end to end on a rendered slide and writes its table."""

import json

from benchmarks import predict


def test_writes_json(tmp_path):
  out = tmp_path / "predict.json"
  predict.main(["--grid", "4", "--batch", "8", "--out", str(out)])
  (row,) = json.loads(out.read_text())["rows"]
  assert row["size"] == "tiny" and row["side"] == 64
  assert 0 < row["tiles"] <= 12  # the spots inside the ellipse of a 4 x 4 grid
  assert abs(row["tiles_per_s"] * row["seconds"] - row["tiles"]) < 1e-6
