"""The SSM mixers' depthwise 1-D convolution, as shifted multiply-adds."""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx


class DepthwiseConv1d(nnx.Conv):
  """nnx.Conv(channels, channels, kernel_size=(k,), feature_group_count=channels,
  padding=[(left, right)]): the same parameters (names, shapes, init), so checkpoints and the
  PyTorch interop are unchanged, computed as k shifted multiply-adds that XLA fuses into one
  loop. XLA:CPU runs the grouped convolution as a generic loop about 100x slower (issue 19:
  123 ms against 1 ms per call at (16, 197, 384)). Products and sums are in float32 at least, as
  a convolution accumulates."""

  def __init__(self, channels: int, kernel_size: int, *, padding: tuple[int, int], **kwargs):
    super().__init__(channels, channels, kernel_size=(kernel_size,),
                     feature_group_count=channels, padding=(tuple(padding),), **kwargs)
    self.pad = tuple(padding)

  def __call__(self, x):
    """x (batch, tokens, channels) -> (batch, tokens + left + right - k + 1, channels)."""
    bias = self.bias[...] if self.bias is not None else None
    x, kernel, bias = self.promote_dtype((x, self.kernel[...], bias), dtype=self.dtype)
    acc = jnp.promote_types(x.dtype, jnp.float32)
    kernel = kernel[:, 0, :].astype(acc)  # (k, 1, channels) -> (k, channels)
    xp = jnp.pad(x.astype(acc), ((0, 0), self.pad, (0, 0)))
    n = xp.shape[1] - kernel.shape[0] + 1
    y = xp[:, :n] * kernel[0]
    for i in range(1, kernel.shape[0]):
      y = y + xp[:, i:i + n] * kernel[i]
    if bias is not None:
      y = y + bias.astype(acc)
    return y.astype(x.dtype)
