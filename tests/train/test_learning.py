"""Pretraining learns: a short seeded run of the :demo recipe beats the random init it started from
on held-out kNN accuracy, and a planted collapse (teacher targets made uniform) does not.

The margin was measured over seeds 0-4 (benchmarks/RESULTS.md, "The learning test"): pretraining
gained +0.084 to +0.105 kNN balanced accuracy, the collapse -0.015 to +0.029; the threshold sits
between, so the test fails when pretraining stops learning, not when a seed is unlucky.
"""

from types import SimpleNamespace

import pytest

from configs import mvhybrid_crc
from mvhybrid_jax import checkpoints
from mvhybrid_jax.data import datasets
from mvhybrid_jax.eval import classification, features, patches
from mvhybrid_jax.train import ssl, trainer

STEPS = 400
MARGIN = 0.055  # kNN balanced accuracy (nine classes) over the random init


def short_config(seed: int = 0, **overrides):
  """The :demo recipe (model, crops, centring, no KoLeo, lr), its schedules compressed into
  STEPS."""
  c = mvhybrid_crc.get_config("demo")
  c.seed = seed
  c.steps_per_epoch, c.epochs = STEPS // 4, 4
  c.warmup_epochs = c.teacher_temp_warmup_epochs = 1
  c.log_every = c.checkpoint_every = STEPS
  c.update(overrides)
  return c


def knn_accuracy(model, classes) -> float:
  """Balanced accuracy of eval.py's kNN (k = 20) on the cls+mean embeddings, test split."""
  train, test = (features.extract(model, classes[s][0], desc=s) for s in ("train", "test"))
  return classification.knn(train, classes["train"][1], test,
                            classes["test"][1])["balanced_accuracy"]


def pretrained_accuracy(config, workdir, classes) -> float:
  trainer.train(config, workdir)
  return knn_accuracy(checkpoints.load_backbone(workdir)[0], classes)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def classes(data_dir):
  """eval.py's train / test split of the demo's nine classes."""
  with pytest.MonkeyPatch.context() as m:
    m.setenv(datasets.DATA_DIR_ENV, data_dir)
    splits, _ = patches.load_splits(SimpleNamespace(train_path="", test_path="",
                                                    synthetic_config="demo"))
  return splits


@pytest.fixture(scope="module")
def random_accuracy(classes):
  """The init that student and teacher start from (the same for both runs below)."""
  return knn_accuracy(ssl.from_config(short_config()).backbone, classes)


def test_pretraining_beats_its_random_init(classes, random_accuracy, data_dir, tmp_path,
                                          monkeypatch):
  monkeypatch.setenv(datasets.DATA_DIR_ENV, data_dir)
  trained = pretrained_accuracy(short_config(), str(tmp_path / "run"), classes)
  assert trained - random_accuracy >= MARGIN, (trained, random_accuracy)


def test_planted_collapse_fails_the_margin(classes, random_accuracy, data_dir, tmp_path,
                                           monkeypatch):
  """A teacher temperature of 10 makes every target uniform: nothing to learn from."""
  monkeypatch.setenv(datasets.DATA_DIR_ENV, data_dir)
  collapsed = pretrained_accuracy(short_config(teacher_temp=(10.0, 10.0)),
                                  str(tmp_path / "run"), classes)
  assert collapsed - random_accuracy < MARGIN, (collapsed, random_accuracy)
