"""Multi-crop: shapes, determinism, crop statistics, each operation against an oracle."""

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from mvhybrid_jax.data import augment


def image(seed=0, size=256):
  return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def test_multicrop_shapes_and_determinism():
  mc = augment.MultiCrop()
  out = mc(image(), np.random.default_rng(0))
  assert out["global_crops"].shape == (2, 256, 256, 3)
  assert out["local_crops"].shape == (8, 112, 112, 3)
  assert out["global_crops"].dtype == np.float32
  again = mc(image(), np.random.default_rng(0))
  for k in out:
    np.testing.assert_array_equal(out[k], again[k])
  other = mc(image(), np.random.default_rng(1))
  assert not np.allclose(out["global_crops"], other["global_crops"])


def test_dinov2_recipe():
  cfg = augment.MultiCropConfig.recipe("dinov2")
  out = augment.MultiCrop(cfg)(image(), np.random.default_rng(0))
  assert out["global_crops"].shape == (2, 224, 224, 3) and out["local_crops"].shape[1] == 96
  assert cfg.blur_p == (0.0, 0.9, 0.5) and cfg.solarize_p == 0.2
  with pytest.raises(ValueError, match="recipe"):
    augment.MultiCropConfig.recipe("simclr")


def test_crop_boxes_follow_scale_and_ratio():
  rng = np.random.default_rng(0)
  for scale in ((0.32, 1.0), (0.05, 0.32)):
    for _ in range(300):
      top, left, h, w = augment.random_resized_crop_box(rng, 256, 256, scale)
      assert 0 <= top and top + h <= 256 and 0 <= left and left + w <= 256
      assert scale[0] * 0.95 <= h * w / 256 ** 2 <= scale[1] * 1.05
      assert 3 / 4 * 0.95 <= w / h <= 4 / 3 * 1.05


def test_identity_settings_give_the_normalised_resize():
  cfg = augment.MultiCropConfig(global_scale=(1.0, 1.0), flip=0.0, jitter_p=0.0,
                                grayscale_p=0.0, blur_p=(0.0, 0.0, 0.0), global_size=128)
  img = image(size=256)
  out = augment.MultiCrop(cfg)(img, np.random.default_rng(0))["global_crops"][0]
  # scale 1 with ratio in (3/4, 4/3) can still pick a non-square box; rebuild it with the same rng
  rng = np.random.default_rng(0)
  top, left, h, w = augment.random_resized_crop_box(rng, 256, 256, (1.0, 1.0))
  ref = Image.fromarray(img).resize((128, 128), Image.BICUBIC, box=(left, top, left + w, top + h))
  want = (np.asarray(ref, np.float32) / 255 - augment.HE_MEAN) / augment.HE_STD
  np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)


def test_gaussian_blur_matches_scipy_with_reflect_padding():
  img = image(size=40)
  sigma = 1.3
  x = np.arange(9) - 4
  k = np.exp(-0.5 * (x / sigma) ** 2)
  k /= k.sum()
  # torch's "reflect" (d c b | a b c d) is scipy's "mirror"
  want = ndimage.correlate1d(img.astype(np.float64), k, axis=0, mode="mirror")
  want = ndimage.correlate1d(want, k, axis=1, mode="mirror")
  got = augment.gaussian_blur(img, sigma)
  assert np.abs(got.astype(int) - np.round(want)).max() <= 1


def test_hue_shift_turns_red_into_cyan():
  red = Image.fromarray(np.full((4, 4, 3), (255, 0, 0), np.uint8))
  out = np.asarray(augment.adjust_hue(red, 0.5))
  assert out[0, 0, 0] < 10 and out[0, 0, 1] > 245 and out[0, 0, 2] > 245
  np.testing.assert_array_equal(np.asarray(augment.adjust_hue(red, 0.0)), np.asarray(red))


def test_jitter_changes_colours_within_bounds():
  img = Image.fromarray(image(size=32))
  out = np.asarray(augment.color_jitter(img, np.random.default_rng(0), 0.2, 0.2, 0.2, 0.1))
  assert out.shape == (32, 32, 3) and out.dtype == np.uint8
  assert not np.array_equal(out, np.asarray(img))


def test_bad_image():
  with pytest.raises(ValueError, match="image: expected uint8"):
    augment.MultiCrop()(np.zeros((32, 32, 3), np.float32), np.random.default_rng(0))


def test_hed_jitter_round_trip_and_effect():
  img = image(size=24)
  class Fixed:  # alpha = 1, beta = 0: the HED round trip alone
    def uniform(self, low, high, size=None):
      return np.full(size, (low + high) / 2)
  back = augment.hed_jitter(img, Fixed(), 0.05)
  assert np.abs(back.astype(int) - img).max() <= 1
  moved = augment.hed_jitter(img, np.random.default_rng(0), 0.05)
  assert np.abs(moved.astype(int) - img).mean() > 1
  cfg = augment.MultiCropConfig(hed_jitter=0.05, global_size=32, local_size=16, n_local=1)
  assert augment.MultiCrop(cfg)(img, np.random.default_rng(0))["global_crops"].shape == (2, 32, 32, 3)
