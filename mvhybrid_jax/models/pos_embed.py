"""Learned positional embeddings resized to the input grid, as DINOv2 and transformers do it."""

import math

import jax.numpy as jnp
import numpy as np

CUBIC_A = -0.75  # PyTorch's bicubic kernel coefficient


def _cubic(t):
  a, t = CUBIC_A, np.abs(t)
  near = ((a + 2) * t - (a + 3)) * t * t + 1
  far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
  return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


def bicubic_matrix(in_size: int, out_size: int, scale_factor: float) -> np.ndarray:
  """(out_size, in_size) weights of torch.nn.functional.interpolate(mode="bicubic",
  align_corners=False, antialias=False, scale_factor=scale_factor) along one axis: source
  coordinate (dst + 0.5) / scale - 0.5, four taps with indices clamped to the border."""
  src = (np.arange(out_size) + 0.5) / scale_factor - 0.5
  base = np.floor(src)
  m = np.zeros((out_size, in_size))
  for tap in range(-1, 3):
    idx = np.clip(base + tap, 0, in_size - 1).astype(int)
    np.add.at(m, (np.arange(out_size), idx), _cubic(src - (base + tap)))
  return m


def interpolate(pos_embed: jnp.ndarray, grid_h: int, grid_w: int, offset: float = 0.1):
  """pos_embed (1, 1 + M*M, dim) with the CLS position first -> (1, 1 + grid_h*grid_w, dim).

  DINOv2 and transformers' Dinov2 resize the M x M patch grid bicubically with scale factors
  (grid + offset) / M; the grid it was trained for is returned unchanged.
  """
  n = pos_embed.shape[1] - 1
  m = math.isqrt(n)
  if m * m != n:
    raise ValueError(f"pos_embed: expected 1 + M*M positions, got {pos_embed.shape[1]}")
  if (grid_h, grid_w) == (m, m):
    return pos_embed
  cls, patches = pos_embed[:, :1], pos_embed[:, 1:].reshape(m, m, -1)  # (M, M, dim)
  wh = jnp.asarray(bicubic_matrix(m, grid_h, (grid_h + offset) / m), jnp.float32)
  ww = jnp.asarray(bicubic_matrix(m, grid_w, (grid_w + offset) / m), jnp.float32)
  patches = jnp.einsum("hi,wj,ijd->hwd", wh, ww, patches.astype(jnp.float32))
  patches = patches.reshape(1, grid_h * grid_w, -1).astype(pos_embed.dtype)
  return jnp.concatenate([cls, patches], axis=1)
