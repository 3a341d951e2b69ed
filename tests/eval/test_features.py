"""Feature extraction: the model's own embedding of the normalised images, padded batches, the
three embedding choices, and the cache."""

import os

import numpy as np
import pytest
from flax import nnx

from mvhybrid_jax import models
from mvhybrid_jax.data import augment, records
from mvhybrid_jax.eval import features


@pytest.fixture(scope="module")
def model():
  m = models.create("vit_12", rngs=nnx.Rngs(0), dim=32, depth=2, num_heads=2)
  m.eval()
  return m


def model_embeddings(model, images):
  """The model's own cls token and mean patch token of the normalised images: the oracle."""
  x = (images / 255.0 - np.asarray(augment.HE_MEAN)) / np.asarray(augment.HE_STD)
  out = model(x.astype(np.float32))
  return np.asarray(out["x_norm_clstoken"]), np.asarray(out["x_norm_patchtokens"]).mean(1)


def test_embeddings_match_the_model(model, tmp_path):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
  cls, mean = model_embeddings(model, images)
  encoded = [records.encode_png(im) for im in images]  # bytes decode to the same pixels
  for embedding, want in (("cls", cls), ("mean", mean),
                          ("cls+mean", np.concatenate([cls, mean], 1))):
    got = features.extract(model, encoded, embedding=embedding, batch_size=2)  # 2 + 2 + 1 padded
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
  cache = str(tmp_path / "cache")
  first = features.extract(model, list(images), batch_size=4, cache_dir=cache)
  (name,) = os.listdir(cache)
  np.save(os.path.join(cache, name), first + 1.0)  # a second call reads the cache
  np.testing.assert_array_equal(features.extract(model, list(images), cache_dir=cache),
                                first + 1.0)
  other = features.extract(model, list(images[:4]), cache_dir=cache)  # other data: a new key
  assert other.shape == (4, 64) and len(os.listdir(cache)) == 2


def test_bad_input(model):
  with pytest.raises(ValueError, match="embedding: expected one of"):
    features.extract(model, [np.zeros((32, 32, 3), np.uint8)], embedding="pooled")
  with pytest.raises(ValueError, match="images: nothing to embed"):
    features.extract(model, [])
  images = [records.encode_png(np.full((32, 32, 3), 200, np.uint8))] * 3
  images[1] = images[1][:len(images[1]) // 2]
  with pytest.raises(ValueError, match=r"images\[1\]: cannot be decoded \(OSError: .*truncated"):
    features.extract(model, images)


@pytest.mark.parametrize("name", ["vit_12", "mvhybrid"])
def test_compiled_once_across_calls(name):
  """Survival and HEST-Benchmark embed slide by slide: calls after the first reuse its compiled
  batch function (same architecture, embedding and batch size; other weights and images)."""
  rng = np.random.default_rng(1)
  images = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
  first, other = (models.create(name, rngs=nnx.Rngs(seed), dim=32, depth=2, num_heads=2,
                                patch_size=8) for seed in (0, 1))
  first.eval()
  other.eval()
  features.extract(first, list(images[:3]), batch_size=4)
  compiled = features._embed._cache_size()
  for m, part in ((first, images[3:]), (other, images[:2]), (other, images)):
    got = features.extract(m, list(part), batch_size=4)
    np.testing.assert_allclose(got, np.concatenate(model_embeddings(m, part), 1), rtol=1e-4,
                               atol=1e-5)
  assert features._embed._cache_size() == compiled
