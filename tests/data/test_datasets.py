"""The synthetic tfds datasets: written once, read back exactly, no TensorFlow."""

import io

import numpy as np
import pytest
from PIL import Image

from mvhybrid_jax.data import datasets, synthetic


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp("tfds"))


def test_spots_round_trip(data_dir):
  src = datasets.load("synthetic_crc_spots", "smoke", data_dir)["spots"]
  slides, genes = synthetic.make_cohort(4, 2, (4, 4), 64, 50, 0)
  assert len(src) == sum(len(s.patches) for s in slides) == 128
  by_key = {(bytes(r["slide"]).decode(), tuple(r["coords"])): r
            for r in (src[i] for i in range(len(src)))}
  for slide in slides:
    for k in range(len(slide.patches)):
      r = by_key[(slide.id, tuple(slide.coords[k]))]
      np.testing.assert_array_equal(r["counts"], slide.counts[k])
      np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(r["image"]))),
                                    slide.patches[k])
      assert bool(r["event"]) == slide.event and abs(float(r["time"]) - slide.time) < 1e-5
  info = datasets.builder("synthetic_crc_spots", "smoke", data_dir).info
  assert list(info.metadata["genes"]) == list(genes.names)


def test_classes_splits_and_reuse(data_dir):
  src = datasets.load("synthetic_crc_classes", "smoke", data_dir)
  assert len(src["train"]) == len(src["test"]) == 4 * 9 * 4
  labels = sorted({int(src["train"][i]["label"]) for i in range(len(src["train"]))})
  assert labels == list(range(9))
  b = datasets.builder("synthetic_crc_classes", "smoke", data_dir)
  assert b.is_prepared()  # the second load reads what the first wrote


def test_unknown_names():
  with pytest.raises(ValueError, match="unknown dataset 'hest'"):
    datasets.builder("hest")
  with pytest.raises(ValueError, match="unknown 'huge'"):
    datasets.builder("synthetic_crc_spots", "huge")


def test_default_data_dir_is_overridable(monkeypatch, tmp_path):
  monkeypatch.setenv(datasets.DATA_DIR_ENV, str(tmp_path))
  assert datasets.default_data_dir() == str(tmp_path)
