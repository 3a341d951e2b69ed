"""benchmarks/train_step.py runs the real step and writes a consistent table."""

import json

from benchmarks import train_step


def test_writes_json(tmp_path, monkeypatch):
  monkeypatch.setenv("MVHYBRID_DATA_DIR", str(tmp_path / "data"))  # never needed: random crops
  out = tmp_path / "train_step.json"
  train_step.main(["--backbones", "vit_12", "--steps", "1", "--out", str(out)])
  result = json.loads(out.read_text())
  (row,) = result["rows"]
  assert row["name"] == "vit_12" and row["batch"] == 4 and row["ratio"] == 1.0
  assert abs(row["images_per_s"] * row["step_s"] - row["batch"]) < 1e-6
  # A step is forward and backward through student, teacher and heads: far more than one
  # student forward of the global crops (2 * params FLOPs per token).
  tokens = row["batch"] * 2 * ((row["crops"]["global_size"] // 16) ** 2 + 1)
  assert row["flops"] > 2 * row["params"] * tokens
  assert row["xla_bytes"] > 0 and row["loss"] > 0
  assert not (tmp_path / "data").exists()
