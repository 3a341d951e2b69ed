"""Exported backbones and train.py workdirs: save, load, the errors, and checkpoints written by
earlier versions of the code."""

import json
import os
import tarfile

import jax
import numpy as np
import pytest
from flax import nnx

from configs import mvhybrid_crc
from mvhybrid_jax import checkpoints, models
from mvhybrid_jax.train import trainer

# A train.py workdir written by commit d4f8020, before the train state had names: one step of
# `old_run_config()`, its teacher exported, and the teacher's embedding of OLD_IMAGES (embed.npy).
OLD_WORKDIR = os.path.join(os.path.dirname(__file__), "fixtures", "workdir_v1.tar.gz")
OLD_IMAGES = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype(np.float32)

SETTINGS = {"name": "mvhybrid", "dim": 32, "depth": 2, "num_heads": 2, "dtype": "float32"}


def test_roundtrip(tmp_path):
  settings = dict(SETTINGS)
  name = settings.pop("name")
  model = models.create(name, rngs=nnx.Rngs(3), **settings)
  model.eval()
  checkpoints.save_backbone(str(tmp_path / "export"), model, SETTINGS)
  loaded, got = checkpoints.load_backbone(str(tmp_path / "export"))
  assert got == SETTINGS
  want = jax.tree.leaves(nnx.state(model, nnx.Param))
  have = jax.tree.leaves(nnx.state(loaded, nnx.Param))
  assert len(want) == len(have) > 10
  for a, b in zip(want, have):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  images = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype(np.float32)
  embed = nnx.jit(lambda m, x: m.embed(x))
  np.testing.assert_allclose(np.asarray(embed(loaded, images)), np.asarray(embed(model, images)),
                             rtol=1e-6, atol=1e-6)
  # A different seed gives different weights, so equality above is not by construction.
  other = models.create(name, rngs=nnx.Rngs(4), **settings)
  largest = lambda leaves: np.asarray(max(leaves, key=lambda x: x.size))
  assert not np.allclose(largest(jax.tree.leaves(nnx.state(other, nnx.Param))), largest(want))


def test_not_a_checkpoint(tmp_path):
  with pytest.raises(ValueError, match="neither an exported backbone"):
    checkpoints.load_backbone(str(tmp_path))


def old_run_config():
  c = mvhybrid_crc.get_config("smoke")
  c.steps_per_epoch, c.epochs, c.warmup_epochs, c.checkpoint_every, c.log_every = 1, 2, 1, 1, 1
  c.crops.n_local = 1
  c.model.d_state, c.model.dim = 4, 16
  c.heads.prototypes, c.heads.hidden, c.heads.bottleneck = 16, 32, 16
  return c


def unpack_old_workdir(tmp_path):
  with tarfile.open(OLD_WORKDIR) as archive:
    archive.extractall(tmp_path / "run", filter="data")
  return tmp_path / "run"


def test_an_old_workdir_and_its_export_load(tmp_path):
  run = unpack_old_workdir(tmp_path)
  want = np.load(run / "embed.npy")
  for path in (run, run / "teacher_backbone"):
    model, settings = checkpoints.load_backbone(str(path))
    assert settings["dim"] == 16 and settings["name"] == "mvhybrid"
    np.testing.assert_allclose(np.asarray(model.embed(OLD_IMAGES)), want, rtol=1e-5, atol=1e-6)
  assert checkpoints.read_settings(str(run)) == settings


def test_an_old_workdir_resumes(tmp_path, monkeypatch):
  """The run goes on from the saved step 1 (its log starts at step 2) to the end, step 2."""
  monkeypatch.setenv("MVHYBRID_DATA_DIR", str(tmp_path / "data"))
  run = unpack_old_workdir(tmp_path)
  trainer.train(old_run_config(), str(run))
  logged = [json.loads(line)["step"] for line in open(run / "metrics.jsonl")]
  assert logged == [2]
  assert sorted(os.listdir(run / "checkpoints")) == ["1", "2"]
