"""DINOv2 multi-crop augmentation with MV_Hybrid's recipe (spec section 3), per image on CPU.

Each step follows torchvision's semantics on PIL images (RandomResizedCrop with bicubic resize,
ColorJitter's four PIL enhancements in random order, grayscale by ITU-R 601 luma, a 9-tap
Gaussian blur with reflect padding), written here with PIL and numpy so that grain workers need
no torch.

Blur probabilities (blur_p: global 1, global 2, locals) are the probabilities of blurring. The
MV_Hybrid config wrote 1.0 / 0.1 / 0.5, but upstream DINOv2's GaussianBlur(p) blurs with
probability 1 - p (its RandomApply gets keep_p), so the paper's run blurred with 0 / 0.9 / 0.5:
the default here. Recipe "dinov2" has DINOv2's other defaults too (224/96 px crops, ImageNet
normalisation, solarisation p 0.2 on the second global crop).
"""

from __future__ import annotations

import dataclasses
import io
import math

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

HE_MEAN = (0.70322989, 0.53606487, 0.66096631)
HE_STD = (0.21716536, 0.26081574, 0.20723464)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# What PIL raises for a truncated, corrupt, unidentifiable or oversized image.
UNREADABLE = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)
HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")  # 16/32-bit grayscale


def to_rgb(img: Image.Image) -> np.ndarray:
  """A PIL image as uint8 (H, W, 3). A 16- or 32-bit grayscale image is scaled linearly from its
  own range (min to max) onto 0..255, where PIL's convert would clip it: a 16-bit TIFF whose
  values span 0..4095 becomes an image, not 99% white."""
  if img.mode not in HIGH_DEPTH_MODES:
    return np.asarray(img.convert("RGB"))
  values = np.asarray(img, dtype=np.float64)
  low, high = values.min(), values.max()
  scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
  return np.repeat(np.rint(scaled).astype(np.uint8)[..., None], 3, axis=-1)


def decode(item) -> np.ndarray:
  """Encoded image bytes or an array -> uint8 (H, W, 3)."""
  if isinstance(item, (bytes, bytearray, np.bytes_)):
    with Image.open(io.BytesIO(item)) as img:
      return to_rgb(img)
  arr = np.asarray(item)
  if arr.ndim != 3 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
    raise ValueError(f"image: expected encoded bytes or uint8 (H, W, 3), got {arr.dtype} "
                     f"{arr.shape}")
  return arr


@dataclasses.dataclass(frozen=True)
class MultiCropConfig:
  global_size: int = 256
  local_size: int = 112
  n_local: int = 8
  global_scale: tuple[float, float] = (0.32, 1.0)
  local_scale: tuple[float, float] = (0.05, 0.32)
  flip: float = 0.5
  jitter: tuple[float, float, float, float] = (0.2, 0.2, 0.2, 0.1)  # brightness..hue
  jitter_p: float = 0.8
  grayscale_p: float = 0.2
  blur_p: tuple[float, float, float] = (0.0, 0.9, 0.5)  # global 1, global 2, locals (as run)
  blur_sigma: tuple[float, float] = (0.1, 2.0)
  solarize_p: float = 0.0  # second global crop only
  mean: tuple[float, float, float] = HE_MEAN
  std: tuple[float, float, float] = HE_STD
  # Pathology extras, off in the paper's recipe.
  rot90: bool = False
  vflip: float = 0.0
  hed_jitter: float = 0.0  # sigma of the HED stain perturbation (Tellez et al. use 0.05)

  @classmethod
  def recipe(cls, name: str = "mvhybrid", **overrides) -> "MultiCropConfig":
    if name == "mvhybrid":
      return cls(**overrides)
    if name == "dinov2":  # upstream defaults, its inverted blur probabilities included
      return cls(**{**dict(global_size=224, local_size=96, solarize_p=0.2, mean=IMAGENET_MEAN,
                           std=IMAGENET_STD), **overrides})
    raise ValueError(f"recipe: expected 'mvhybrid' or 'dinov2', got {name!r}")


def random_resized_crop_box(rng, height, width, scale, ratio=(3 / 4, 4 / 3)):
  """torchvision.RandomResizedCrop.get_params: (top, left, h, w)."""
  area = height * width
  log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
  for _ in range(10):
    target = area * rng.uniform(*scale)
    aspect = math.exp(rng.uniform(*log_ratio))
    w = int(round(math.sqrt(target * aspect)))
    h = int(round(math.sqrt(target / aspect)))
    if 0 < w <= width and 0 < h <= height:
      return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
  # fallback: the largest centred crop within the ratio range
  in_ratio = width / height
  if in_ratio < ratio[0]:
    w, h = width, int(round(width / ratio[0]))
  elif in_ratio > ratio[1]:
    h, w = height, int(round(height * ratio[1]))
  else:
    w, h = width, height
  return (height - h) // 2, (width - w) // 2, h, w


def color_jitter(img: Image.Image, rng, brightness, contrast, saturation, hue) -> Image.Image:
  """torchvision.ColorJitter on a PIL image: the four adjustments in a random order."""
  for op in rng.permutation(4):
    if op == 0:
      img = ImageEnhance.Brightness(img).enhance(rng.uniform(1 - brightness, 1 + brightness))
    elif op == 1:
      img = ImageEnhance.Contrast(img).enhance(rng.uniform(1 - contrast, 1 + contrast))
    elif op == 2:
      img = ImageEnhance.Color(img).enhance(rng.uniform(1 - saturation, 1 + saturation))
    else:
      img = adjust_hue(img, rng.uniform(-hue, hue))
  return img


def adjust_hue(img: Image.Image, factor: float) -> Image.Image:
  """torchvision's PIL adjust_hue: shift the HSV hue channel by factor * 255 (mod 256)."""
  h, s, v = img.convert("HSV").split()
  h = np.asarray(h, np.uint8) + np.uint8(np.int64(factor * 255) % 256)  # wraps like uint8
  return Image.merge("HSV", (Image.fromarray(h, "L"), s, v)).convert("RGB")


# Ruifrok & Johnston's stain matrix (rows: haematoxylin, eosin, DAB), as in skimage.color.
RGB_FROM_HED = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
HED_FROM_RGB = np.linalg.inv(RGB_FROM_HED)
_LOG_EPS = math.log(1e-6)


def hed_jitter(arr: np.ndarray, rng, sigma: float) -> np.ndarray:
  """Stain augmentation: each of H, E, D concentrations scaled by U(1 +- sigma) and shifted by
  U(+-sigma) in skimage's rgb2hed space, then back to RGB. Unlike rgb2hed, negative
  concentrations are kept, so that alpha = 1, beta = 0 is exactly the identity."""
  rgb = np.maximum(arr.astype(np.float64) / 255.0, 1e-6)
  hed = (np.log(rgb) / _LOG_EPS) @ HED_FROM_RGB
  hed = hed * rng.uniform(1 - sigma, 1 + sigma, 3) + rng.uniform(-sigma, sigma, 3)
  out = np.exp(-(hed * -_LOG_EPS) @ RGB_FROM_HED)
  return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)


def gaussian_blur(arr: np.ndarray, sigma: float, kernel: int = 9) -> np.ndarray:
  """torchvision.transforms.GaussianBlur(kernel_size=9): separable, reflect padding."""
  x = np.arange(kernel) - (kernel - 1) / 2
  k = np.exp(-0.5 * (x / sigma) ** 2)
  k /= k.sum()
  pad = kernel // 2
  f = np.pad(arr.astype(np.float32), [(pad, pad), (pad, pad), (0, 0)], mode="reflect")
  f = sum(k[i] * f[i:i + arr.shape[0]] for i in range(kernel))  # rows
  f = sum(k[i] * f[:, i:i + arr.shape[1]] for i in range(kernel))  # columns
  return np.clip(np.round(f), 0, 255).astype(np.uint8)


class MultiCrop:
  """image (H, W, 3) uint8 -> {"global_crops": (2, G, G, 3), "local_crops": (n, L, L, 3)}
  float32, normalised. Deterministic given the numpy Generator."""

  def __init__(self, config: MultiCropConfig = MultiCropConfig()):
    self.cfg = config
    self._mean = np.asarray(config.mean, np.float32)
    self._std = np.asarray(config.std, np.float32)

  def crop(self, img: Image.Image, rng, size, scale, blur_p, solarize_p=0.0) -> np.ndarray:
    cfg = self.cfg
    top, left, h, w = random_resized_crop_box(rng, img.height, img.width, scale)
    out = img.resize((size, size), Image.BICUBIC, box=(left, top, left + w, top + h))
    if rng.uniform() < cfg.flip:
      out = ImageOps.mirror(out)
    if rng.uniform() < cfg.vflip:
      out = ImageOps.flip(out)
    if cfg.rot90:
      out = out.rotate(90 * int(rng.integers(4)))
    if rng.uniform() < cfg.jitter_p:
      out = color_jitter(out, rng, *cfg.jitter)
    if rng.uniform() < cfg.grayscale_p:
      out = out.convert("L").convert("RGB")
    arr = np.asarray(out)
    if cfg.hed_jitter > 0:
      arr = hed_jitter(arr, rng, cfg.hed_jitter)
    if rng.uniform() < blur_p:
      arr = gaussian_blur(arr, rng.uniform(*cfg.blur_sigma))
    if rng.uniform() < solarize_p:
      arr = np.where(arr >= 128, 255 - arr, arr).astype(np.uint8)
    return (arr.astype(np.float32) / 255.0 - self._mean) / self._std

  def __call__(self, image: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
      raise ValueError(f"image: expected uint8 (H, W, 3), got {image.dtype} {image.shape}")
    cfg = self.cfg
    img = Image.fromarray(image)
    globals_ = [self.crop(img, rng, cfg.global_size, cfg.global_scale, cfg.blur_p[0]),
                self.crop(img, rng, cfg.global_size, cfg.global_scale, cfg.blur_p[1],
                          cfg.solarize_p)]
    locals_ = [self.crop(img, rng, cfg.local_size, cfg.local_scale, cfg.blur_p[2])
               for _ in range(cfg.n_local)]
    return {"global_crops": np.stack(globals_), "local_crops": np.stack(locals_)}
