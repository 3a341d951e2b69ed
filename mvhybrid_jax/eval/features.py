"""Frozen-backbone embeddings of image sets: batched, jitted, split over the local devices, cached.

    feats = extract(model, images, embedding="cls+mean", cache_dir="OUT/features")

images: a sequence of uint8 (H, W, 3) arrays or encoded PNG/JPEG bytes (a list, an array, a data
source). They are normalised with the H&E statistics of the pretraining recipe. The cache key is a
hash of the backbone's parameters, its settings, the images and the options, so a checkpoint and
a data set are embedded once.
"""

from __future__ import annotations

import functools
import hashlib
import os

import jax
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P
from tqdm import tqdm

from mvhybrid_jax import sharding
from mvhybrid_jax.data import augment


def normalise_images(images) -> np.ndarray:
  """uint8 (n, H, W, 3) -> float32 with the pretraining recipe's H&E statistics."""
  x = np.asarray(images, np.float32) / 255.0
  return (x - np.asarray(augment.HE_MEAN, np.float32)) / np.asarray(augment.HE_STD, np.float32)


def _update_params(h, model) -> None:
  for x in jax.tree.leaves(nnx.state(model, nnx.Param)):
    h.update(np.ascontiguousarray(np.asarray(x)).tobytes())


def params_digest(model) -> str:
  """A hash of the backbone's parameters: which weights a probe was fitted on."""
  h = hashlib.sha256()
  _update_params(h, model)
  return h.hexdigest()[:24]


def _digest(model, images, embedding) -> str:
  h = hashlib.sha256(f"{embedding}|{type(model).__name__}".encode())
  _update_params(h, model)
  h.update(str(len(images)).encode())
  for i in range(len(images)):
    item = images[i]
    h.update(item if isinstance(item, bytes) else np.ascontiguousarray(item).tobytes())
  return h.hexdigest()[:24]


def _decoded(images, i: int) -> np.ndarray:
  """images[i] as uint8 (H, W, 3); an unreadable one is an error naming it (folders.pack checks
  every image, so this is a file damaged after packing)."""
  try:
    return augment.decode(images[i])
  except augment.UNREADABLE as e:
    name = images.describe(i) if hasattr(images, "describe") else f"images[{i}]"
    raise ValueError(f"{name}: cannot be decoded ({type(e).__name__}: {e}); re-pack the data "
                     "with data.folders.pack, which skips and names unreadable files") from None


@functools.partial(jax.jit, static_argnames=("graphdef", "embedding"))
def _embed(graphdef, state, x, embedding):
  """One batch's embeddings, compiled once per architecture, embedding and batch shape, not once
  per call of extract: survival and HEST-Benchmark call it slide by slide."""
  return nnx.merge(graphdef, state).embed(x, embedding)


def extract(model, images, *, embedding: str = "cls+mean", batch_size: int = 64,
            cache_dir: str | None = None, desc: str = "embedding") -> np.ndarray:
  """(n, dim or 2 * dim) float32 embeddings of the images, in order; the model in eval mode."""
  if len(images) == 0:
    raise ValueError("images: nothing to embed")
  path = None
  if cache_dir:
    path = os.path.join(cache_dir, _digest(model, images, embedding) + ".npy")
    if os.path.exists(path):
      return np.load(path)
  model.eval()
  devices = jax.local_devices()  # each host embeds its own images
  mesh = sharding.make_mesh(devices=devices)
  batch_sharding = sharding.batch_sharding(mesh)
  batch_size = -(-batch_size // len(devices)) * len(devices)  # a multiple of the devices
  graphdef, state = nnx.split(model)
  state = jax.device_put(state, NamedSharding(mesh, P()))  # replicated, once per call
  out = []
  for start in tqdm(range(0, len(images), batch_size), desc=desc, unit="batch"):
    chunk = [_decoded(images, i) for i in range(start, min(start + batch_size, len(images)))]
    x = normalise_images(np.stack(chunk))  # (b, H, W, 3)
    pad = batch_size - len(chunk)  # the last batch, padded to the same compiled shape
    x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), np.float32)]) if pad else x
    out.append(np.asarray(_embed(graphdef, state, jax.device_put(x, batch_sharding),
                                 embedding))[:len(chunk)])
  feats = np.concatenate(out).astype(np.float32)
  if path:
    os.makedirs(cache_dir, exist_ok=True)
    tmp = path + ".tmp.npy"
    np.save(tmp, feats)
    os.replace(tmp, path)
  return feats
