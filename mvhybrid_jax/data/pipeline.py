"""grain pipelines: host shard -> shuffle (a new order each epoch) -> repeat -> decode and
augment -> batch -> masks, with an iterator state that saves and restores exactly.

    ds = pretrain_dataset(source, batch_size=64, seed=0)
    it = iter(ds); batch = next(it)
    state = it.get_state()        # store with the checkpoint; it.set_state(state) resumes

A source is any random-access sequence (len, getitem) of images: encoded PNG/JPEG bytes or uint8
(H, W, 3) arrays (an ArrayRecord data source, a list, ...).

A record that cannot be decoded (truncated, corrupt, too large) does not stop the run: its slot
takes the next record of the source that decodes, and the batch lists the skipped records in
batch["skipped"], [(source index, reason)], for the trainer to name, count and limit.
"""

from __future__ import annotations

import grain
import jax
import numpy as np

from mvhybrid_jax.data import augment, masking


def host_shard(ds: grain.MapDataset, index: int | None = None, count: int | None = None):
  """This host's share: elements index, index + count, ... (disjoint, together complete)."""
  index = jax.process_index() if index is None else index
  count = jax.process_count() if count is None else count
  if not 0 <= index < count:
    raise ValueError(f"shard: expected 0 <= index < count, got index={index}, count={count}")
  return ds[index::count]


MAX_CONSECUTIVE_UNREADABLE = 16
PREFETCH_BATCHES = 2


def readable(source, index: int):
  """(image, skipped): record `index` decoded, or if it cannot be, the next record in the
  source's order that can; skipped lists [(index, reason)] of those passed over."""
  skipped = []
  for k in range(MAX_CONSECUTIVE_UNREADABLE):
    i = (index + k) % len(source)
    try:
      return augment.decode(source[i]), skipped
    except augment.UNREADABLE as e:
      skipped.append((i, f"{type(e).__name__}: {e}"))
  raise ValueError(f"source: records {skipped[0][0]} to {skipped[-1][0]} ({len(skipped)} in a "
                   f"row) cannot be decoded as images; the first: {skipped[0][1]}")


def _stack(elements):
  """grain's batch, with the skipped records of its elements listed rather than stacked."""
  out = {k: np.stack([e[k] for e in elements]) for k in elements[0] if k != "skipped"}
  return {**out, "skipped": [s for e in elements for s in e["skipped"]]}


def pretrain_dataset(source, *, batch_size: int, seed: int = 0,
                     crops: augment.MultiCropConfig = augment.MultiCropConfig(),
                     patch_size: int = 16, num_epochs: int | None = None,
                     shard: tuple[int, int] | None = None, num_workers: int = 0,
                     mask_kw: dict | None = None) -> grain.IterDataset:
  """Batches of {"global_crops": (B, 2, G, G, 3), "local_crops": (B, n, L, L, 3),
  "masks": (B, 2, (G / patch)^2) bool, "skipped": [(index, reason)]} for DINOv2/iBOT
  pretraining on this host.

  The last incomplete batch of a finite run is dropped (at most batch_size - 1 images of the
  final epoch); num_epochs=None repeats forever, which pretraining uses.
  """
  if len(source) == 0:
    raise ValueError("source: no images (an empty dataset or folder)")
  ds = grain.MapDataset.range(len(source))  # record indices: a skipped one can be named
  ds = host_shard(ds, *(shard or (None, None)))
  if len(ds) < batch_size:
    raise ValueError(f"batch_size: {batch_size} is more than this host's {len(ds)} images")
  ds = ds.shuffle(seed=seed).repeat(num_epochs)
  multicrop = augment.MultiCrop(crops)

  def crop(index, rng):
    image, skipped = readable(source, index)
    return {**multicrop(image, rng), "skipped": skipped}

  ds = ds.random_map(crop, seed=seed + 1)
  ds = ds.batch(batch_size, drop_remainder=True, batch_fn=_stack)
  grid = crops.global_size // patch_size

  def add_masks(batch, rng):
    m = masking.batch_masks(rng, 2 * batch_size, (grid, grid), **(mask_kw or {}))
    return {**batch, "masks": m.reshape(batch_size, 2, grid * grid)}

  # A few batches ahead, in two threads: grain's default (16 threads filling 500 batches) would
  # hold hundreds of augmented batches in memory and take the CPU from everything else.
  ds = ds.random_map(add_masks, seed=seed + 2).to_iter_dataset(
      grain.ReadOptions(num_threads=2, prefetch_buffer_size=PREFETCH_BATCHES))
  if num_workers:
    ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers))
  return ds
