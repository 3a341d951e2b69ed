"""The survival task end to end: synthetic slides, and a folder of slide tile records with a
clinical CSV."""

import numpy as np
import pytest
from PIL import Image

from configs import eval_survival
from mvhybrid_jax.data import folders
from mvhybrid_jax.eval import slides


def test_synthetic_slides(tmp_path, monkeypatch):
  monkeypatch.setenv("MVHYBRID_DATA_DIR", str(tmp_path / "data"))
  r = slides.run(eval_survival.get_config("smoke"), str(tmp_path / "out"))
  metrics = r["random mvhybrid"]["metrics"]
  assert set(metrics) == {"cox", "gmm", "abmil"}
  assert all(0.0 <= m["c_index"] <= 1.0 for m in metrics.values())
  assert "| random mvhybrid | mvhybrid | cox |" in open(tmp_path / "out" / "results.md").read()


def test_slide_folder_and_clinical_csv(tmp_path):
  rng = np.random.default_rng(0)
  tiles = tmp_path / "slides"
  tiles.mkdir()
  for s in range(8):
    src = tmp_path / f"src{s}"
    src.mkdir()
    for i in range(3):
      Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(src / f"{i}.png")
    folders.pack(str(src), str(tiles / f"S{s}.array_record"))
  csv = tmp_path / "clinical.csv"
  csv.write_text("slide_id,time,event\n" + "\n".join(
      f"S{s},{1 + s},{s % 2}" for s in range(8)) + "\n")
  c = eval_survival.get_config("smoke")
  c.data.slides_dir, c.data.clinical_csv, c.folds = str(tiles), str(csv), 4
  c.methods = ("cox", "gmm")  # ABMIL: covered on the synthetic slides
  r = slides.run(c, str(tmp_path / "out"))
  assert set(r["random mvhybrid"]["metrics"]) == {"cox", "gmm"}
  csv.write_text("slide_id,time,event\nS0,1,1\n")
  with pytest.raises(ValueError, match=r"no clinical row for slides \['S1'"):
    slides.run(c, str(tmp_path / "out"))
  c.data.slides_dir = str(tmp_path / "src0")
  with pytest.raises(ValueError, match="no \\*.array_record in"):
    slides.run(c, str(tmp_path / "out"))
