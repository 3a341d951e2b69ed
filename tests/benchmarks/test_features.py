"""benchmarks/features.py runs extraction end to end and writes its table."""

import json

from benchmarks import features


def test_writes_json(tmp_path):
  out = tmp_path / "features.json"
  features.main(["--backbones", "vit_12,mvhybrid", "--images", "8", "--side", "32",
                 "--batch", "4", "--out", str(out)])
  rows = json.loads(out.read_text())["rows"]
  assert [r["name"] for r in rows] == ["vit_12", "mvhybrid"]
  assert rows[0]["ratio"] == 1.0 and rows[1]["dim"] == 64  # cls + mean of dim 32
  assert abs(rows[1]["images_per_s"] * rows[1]["seconds"] - 8) < 1e-6
