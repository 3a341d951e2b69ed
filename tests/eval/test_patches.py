"""Classification and retrieval tasks end to end: synthetic patches, and packed folders."""

import os

import numpy as np
import pytest
from PIL import Image

from configs import eval_cls, eval_retrieval
from mvhybrid_jax.data import folders
from mvhybrid_jax.eval import patches


def test_cls_and_retrieval_on_synthetic_patches(tmp_path, monkeypatch):
  monkeypatch.setenv("MVHYBRID_DATA_DIR", str(tmp_path / "data"))
  out = str(tmp_path / "cls")
  r = patches.run(eval_cls.get_config("smoke"), out)["random mvhybrid"]["metrics"]
  assert set(r) == {"linear", "knn"}
  for m in r.values():
    assert set(m) == {"balanced_accuracy", "weighted_f1", "auroc"}
    assert 1 / 9 < m["balanced_accuracy"] <= 1.0  # above chance for nine classes
  md = open(os.path.join(out, "results.md")).read()
  assert "| random mvhybrid | mvhybrid | knn |" in md
  r = patches.run(eval_retrieval.get_config("smoke"), str(tmp_path / "ret"))
  assert set(r["random mvhybrid"]["metrics"]["retrieval"]) == {
      "acc@1", "acc@3", "acc@5", "mv@5", "prototype_acc"}


def pack(root, classes, n=6, seed=0):
  rng = np.random.default_rng(seed)
  for c in classes:
    os.makedirs(root / c, exist_ok=True)
    for i in range(n):
      Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
  out = str(root) + ".ar"
  folders.pack(str(root), out, class_folders=True)
  return out


def test_packed_folders(tmp_path):
  c = eval_cls.get_config("smoke")
  c.data.train_path = pack(tmp_path / "train", ["ADI", "TUM"])
  c.data.test_path = pack(tmp_path / "test", ["ADI", "TUM"], seed=1)
  r = patches.run(c, str(tmp_path / "out"))
  assert set(r["random mvhybrid"]["metrics"]) == {"linear", "knn"}
  c.data.test_path = pack(tmp_path / "other", ["ADI", "STR"], seed=2)
  with pytest.raises(ValueError, match=r"classes \['ADI', 'STR'\] differ"):
    patches.run(c, str(tmp_path / "out"))
  c.data.test_path = ""
  with pytest.raises(ValueError, match="set both"):
    patches.run(c, str(tmp_path / "out"))
