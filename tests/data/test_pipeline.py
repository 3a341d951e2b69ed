"""grain pipelines: batches, determinism, host sharding, resume, workers, bad input."""

import io

import grain
import numpy as np
import pytest
from PIL import Image

from mvhybrid_jax.data import augment, pipeline

SMALL = augment.MultiCropConfig(global_size=64, local_size=32, n_local=2)


def source(n=12, size=80):
  rng = np.random.default_rng(0)
  return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]


def test_batches_and_masks():
  it = iter(pipeline.pretrain_dataset(source(), batch_size=4, crops=SMALL))
  batch = next(it)
  assert batch["global_crops"].shape == (4, 2, 64, 64, 3)
  assert batch["local_crops"].shape == (4, 2, 32, 32, 3)
  assert batch["masks"].shape == (4, 2, 16) and batch["masks"].dtype == bool
  assert (batch["masks"].reshape(8, 16).sum(1) > 0).sum() == 4  # half of the global crops


def test_deterministic_and_resumable():
  make = lambda: iter(pipeline.pretrain_dataset(source(), batch_size=4, seed=3, crops=SMALL))
  a, b = make(), make()
  first = next(a)
  np.testing.assert_array_equal(first["global_crops"], next(b)["global_crops"])
  for _ in range(3):  # into the second epoch (12 images, 3 batches an epoch)
    next(a)
  state = a.get_state()
  want = next(a)
  c = make()
  c.set_state(state)
  got = next(c)
  for key in want:
    np.testing.assert_array_equal(got[key], want[key])


def test_epochs_are_reshuffled_and_complete():
  ids = [np.full((8, 8, 3), i, np.uint8) for i in range(10)]
  ds = pipeline.host_shard(grain.MapDataset.source(ids), 0, 1).shuffle(seed=0).repeat(2)
  order = [int(x[0, 0, 0]) for x in ds]
  assert sorted(order[:10]) == list(range(10)) and sorted(order[10:]) == list(range(10))
  assert order[:10] != order[10:]


def test_host_shards_cover_the_data_without_overlap():
  ds = grain.MapDataset.source(list(range(23)))
  shards = [list(pipeline.host_shard(ds, i, 4)) for i in range(4)]
  flat = sorted(x for s in shards for x in s)
  assert flat == list(range(23))
  assert max(map(len, shards)) - min(map(len, shards)) <= 1
  with pytest.raises(ValueError, match="shard"):
    pipeline.host_shard(ds, 4, 4)


def test_encoded_images_and_workers():
  def png(a):
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    return buf.getvalue()
  arrays = source(8)
  from_bytes = iter(pipeline.pretrain_dataset([png(a) for a in arrays], batch_size=4,
                                              crops=SMALL))
  from_arrays = iter(pipeline.pretrain_dataset(arrays, batch_size=4, crops=SMALL))
  np.testing.assert_array_equal(next(from_bytes)["global_crops"],
                                next(from_arrays)["global_crops"])
  workers = iter(pipeline.pretrain_dataset(arrays, batch_size=4, crops=SMALL, num_workers=2))
  np.testing.assert_array_equal(next(workers)["local_crops"],
                                next(iter(pipeline.pretrain_dataset(
                                    arrays, batch_size=4, crops=SMALL)))["local_crops"])


def test_bad_input():
  with pytest.raises(ValueError, match="no images"):
    pipeline.pretrain_dataset([], batch_size=2)
  with pytest.raises(ValueError, match="batch_size: 8 is more than this host's 4"):
    pipeline.pretrain_dataset(source(4), batch_size=8)
  with pytest.raises(ValueError, match="image: expected encoded bytes or uint8"):
    augment.decode(np.zeros((8, 8), np.float32))


def png(a):
  buf = io.BytesIO()
  Image.fromarray(a).save(buf, "PNG")
  return buf.getvalue()


def test_unreadable_records_are_skipped_named_and_passed_for_good():
  """A truncated PNG and bytes that are no image: each batch stays full (the next readable
  record takes the slot), the batches list the two by index, and an iterator restored after
  them does not meet them again in the epoch."""
  records = [png(a) for a in source(12)]
  records[5] = records[5][:len(records[5]) // 2]
  records[9] = b"not an image"
  make = lambda: iter(pipeline.pretrain_dataset(records, batch_size=4, seed=5, crops=SMALL))
  it, skipped, states = make(), [], []
  for _ in range(3):  # one epoch
    batch = next(it)
    assert batch["global_crops"].shape == (4, 2, 64, 64, 3)
    skipped += batch["skipped"]
    states.append((it.get_state(), bool(batch["skipped"])))
  assert sorted(i for i, _ in skipped) == [5, 9]
  reasons = dict(skipped)
  assert "truncated" in reasons[5] and reasons[9].startswith("UnidentifiedImageError")
  last_skip = max(k for k, (_, had) in enumerate(states) if had)
  assert last_skip < 2  # (seed 5) so that the resumed iterator has batches left to check
  resumed = make()
  resumed.set_state(states[last_skip][0])
  for _ in range(2 - last_skip):
    assert next(resumed)["skipped"] == []
  # A source that is not images at all is an error, not an endless search.
  with pytest.raises(ValueError, match=r"source: records \d+ to \d+ \(16 in a row\) cannot be "
                                       r"decoded as images; the first: UnidentifiedImageError"):
    next(iter(pipeline.pretrain_dataset([b"x"] * 20, batch_size=4, crops=SMALL)))
