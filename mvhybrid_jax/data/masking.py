"""iBOT's BEiT-style block masks, as DINOv2 draws them for a batch (spec section 3)."""

from __future__ import annotations

import math

import numpy as np


def block_mask(rng: np.random.Generator, grid: tuple[int, int], num_masked: int, *,
               min_block: int = 4, aspect: tuple[float, float] = (0.3, 1 / 0.3),
               max_masked: int | None = None) -> np.ndarray:
  """A (grid_h, grid_w) bool mask of about num_masked patches, made of rectangular blocks.

  Blocks of at least min_block patches with aspect ratio log-uniform in `aspect` are added until
  num_masked is reached or a block no longer fits (10 tries); the total never exceeds
  max_masked (default: half the patches).
  """
  h, w = grid
  max_masked = h * w // 2 if max_masked is None else max_masked
  log_aspect = (math.log(aspect[0]), math.log(aspect[1]))
  mask = np.zeros(grid, bool)
  count = 0
  while count < num_masked:
    budget = min(num_masked - count, max_masked - count)
    if budget < 1:
      break
    added = 0
    for _ in range(10):
      area = rng.uniform(*sorted((min_block, budget)))  # as DINOv2: [budget, min] if short
      ratio = math.exp(rng.uniform(*log_aspect))
      bh, bw = int(round(math.sqrt(area * ratio))), int(round(math.sqrt(area / ratio)))
      if bh < h and bw < w:
        top, left = rng.integers(0, h - bh + 1), rng.integers(0, w - bw + 1)
        new = bh * bw - mask[top:top + bh, left:left + bw].sum()
        if 0 < new <= budget:
          mask[top:top + bh, left:left + bw] = True
          added = int(new)
          break
    if added == 0:
      break
    count += added
  return mask


def batch_masks(rng: np.random.Generator, batch: int, grid: tuple[int, int], *,
                ratio: tuple[float, float] = (0.1, 0.5), masked_fraction: float = 0.5,
                **block_kw) -> np.ndarray:
  """(batch, grid_h * grid_w) bool: DINOv2's collate masking.

  int(batch * masked_fraction) images get a block mask whose target ratio is drawn from
  consecutive slices of `ratio` (so the batch spans the whole range), the others none; the order
  is shuffled.
  """
  n = grid[0] * grid[1]
  n_masked = int(batch * masked_fraction)
  edges = np.linspace(ratio[0], ratio[1], n_masked + 1)
  masks = [block_mask(rng, grid, int(n * rng.uniform(edges[i], edges[i + 1])), **block_kw)
           for i in range(n_masked)]
  masks += [np.zeros(grid, bool)] * (batch - n_masked)
  masks = np.stack(masks).reshape(batch, n)
  return masks[rng.permutation(batch)]


def max_masked(batch: int, n_patches: int, *, ratio: tuple[float, float] = (0.1, 0.5),
               masked_fraction: float = 0.5) -> int:
  """An upper bound on the masked patches of batch_masks(batch, ...) with these settings: the
  static size of the buffer the iBOT head runs on (DINOv2's n_masked_patches upper bound). Also
  holds for a global batch whose hosts draw their masks separately."""
  return int(batch * masked_fraction) * min(int(n_patches * ratio[1]), n_patches // 2)
