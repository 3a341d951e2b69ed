"""iBOT block masks: the statistics of spec section 3."""

import numpy as np
from scipy import ndimage

from mvhybrid_jax.data import masking


def test_block_mask_reaches_its_target_with_blocks():
  rng = np.random.default_rng(0)
  for target in (26, 64, 128):
    for _ in range(20):
      mask = masking.block_mask(rng, (16, 16), target)
      assert target * 0.9 <= mask.sum() <= target
      labels, n = ndimage.label(mask)
      sizes = np.bincount(labels.ravel())[1:]
      assert n >= 1 and sizes.max() >= 4  # made of blocks, not scattered patches


def test_block_mask_never_exceeds_half():
  rng = np.random.default_rng(1)
  assert masking.block_mask(rng, (16, 16), 200).sum() <= 128
  assert masking.block_mask(rng, (7, 7), 49).sum() <= 24


def test_block_aspect_ratios():
  rng = np.random.default_rng(2)
  ratios = []
  for _ in range(200):
    mask = masking.block_mask(rng, (16, 16), 20, min_block=16)
    rows, cols = np.nonzero(mask)
    if len(rows) == mask.sum() and (np.ptp(rows) + 1) * (np.ptp(cols) + 1) == mask.sum():
      ratios.append((np.ptp(rows) + 1) / (np.ptp(cols) + 1))  # a single rectangle
  ratios = np.array(ratios)
  assert len(ratios) > 50
  assert ratios.min() >= 0.2 and ratios.max() <= 5.0  # 0.3..3.3, rounded to whole patches
  assert (ratios < 1).any() and (ratios > 1).any()


def test_batch_masks_follow_dinov2_collate():
  rng = np.random.default_rng(3)
  masks = masking.batch_masks(rng, 64, (16, 16))
  assert masks.shape == (64, 256) and masks.dtype == bool
  counts = masks.sum(1)
  assert (counts > 0).sum() == 32  # half of the images
  ratios = np.sort(counts[counts > 0]) / 256
  assert ratios.min() >= 0.09 and ratios.max() <= 0.5
  assert ratios.min() < 0.15 and ratios.max() > 0.4  # the range is spanned
  again = masking.batch_masks(np.random.default_rng(3), 64, (16, 16))
  np.testing.assert_array_equal(masks, again)
