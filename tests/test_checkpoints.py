"""Exported backbones: save, load, and the errors."""

import jax
import numpy as np
import pytest
from flax import nnx

from mvhybrid_jax import checkpoints, models

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
  np.testing.assert_allclose(np.asarray(loaded.embed(images)), np.asarray(model.embed(images)),
                             rtol=1e-6, atol=1e-6)
  # A different seed gives different weights, so equality above is not by construction.
  other = models.create(name, rngs=nnx.Rngs(4), **settings)
  largest = lambda leaves: np.asarray(max(leaves, key=lambda x: x.size))
  assert not np.allclose(largest(jax.tree.leaves(nnx.state(other, nnx.Param))), largest(want))


def test_not_a_checkpoint(tmp_path):
  with pytest.raises(ValueError, match="neither an exported backbone"):
    checkpoints.load_backbone(str(tmp_path))
