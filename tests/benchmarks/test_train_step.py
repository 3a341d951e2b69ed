"""benchmarks/train_step.py runs the real step and writes a consistent table."""

import json

import numpy as np

from benchmarks import train_step


def test_writes_json(tmp_path, monkeypatch):
  monkeypatch.setenv("MVHYBRID_DATA_DIR", str(tmp_path / "data"))  # never needed: random crops
  out = tmp_path / "train_step.json"
  train_step.main(["--backbones", "vit_12", "--steps", "1", "--rounds", "2", "--ibot", "both",
                   "--out", str(out)])
  result = json.loads(out.read_text())
  row, all_patches = result["rows"]
  assert row["name"] == "vit_12" and row["batch"] == 4 and row["ratio"] == 1.0
  # DINOv2's gather: the iBOT heads on the masked patches only give the same loss for fewer FLOPs.
  assert row["ibot_masked_only"] and not all_patches["ibot_masked_only"]
  np.testing.assert_allclose(row["loss"], all_patches["loss"], rtol=1e-4)
  assert row["flops"] < all_patches["flops"]
  assert abs(row["images_per_s"] * row["step_s"] - row["batch"]) < 1e-6
  # A step is forward and backward through student, teacher and heads: far more than one
  # student forward of the global crops (2 * params FLOPs per token).
  tokens = row["batch"] * 2 * ((row["crops"]["global_size"] // 16) ** 2 + 1)
  assert row["flops"] > 2 * row["params"] * tokens
  assert row["xla_bytes"] > 0 and row["loss"] > 0
  assert 0 < row["finite_check_s"] and np.isclose(row["finite_check_fraction"],
                                                  row["finite_check_s"] / row["step_s"])
  assert not (tmp_path / "data").exists()
