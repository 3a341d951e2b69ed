"""analysis.probing against the scan and known spectra."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from PIL import Image

from kernels import selective_scan
from mvhybrid_jax import models
from mvhybrid_jax.analysis import probing
from mvhybrid_jax.eval import features
from mvhybrid_jax.models.mamba_vision import MambaVisionMixer

# --- mixers ----------------------------------------------------------------------------------


class CircularConv(nnx.Module):
  """y_t = sum_m h[m] x_{t-m mod L} on every channel: a linear, shift-invariant mixer."""

  def __init__(self, h):
    self.h = nnx.Param(jnp.asarray(h, jnp.float32))

  def __call__(self, x):  # (batch, L, dim)
    return sum(self.h[m] * jnp.roll(x, m, axis=1) for m in range(self.h.shape[0]))


def test_mixer_spectrum_of_a_circular_convolution_is_its_dft():
  L, dim = 12, 5
  h = np.random.default_rng(1).normal(size=L)
  s = probing.mixer_spectrum(CircularConv(h), dim, tokens=L, probes=2)
  np.testing.assert_allclose(s["gain"], np.abs(np.fft.fft(h))[:L // 2 + 1] ** 2, rtol=1e-5,
                             atol=1e-6)
  t, src = np.meshgrid(np.arange(L), np.arange(L), indexing="ij")
  np.testing.assert_allclose(s["kernel"], h[(t - src) % L] ** 2, rtol=1e-5, atol=1e-7)
  assert s["lag"].shape == (2 * L - 1,)
  np.testing.assert_allclose(s["lag"][L - 1], h[0] ** 2, rtol=1e-5)  # lag 0


def test_a_smoothing_mixer_is_low_pass_and_a_differencing_one_high_pass():
  smooth = probing.mixer_spectrum(CircularConv([0.25, 0.5, 0.25]), 4, tokens=16, probes=1)
  rough = probing.mixer_spectrum(CircularConv([0.5, -0.5]), 4, tokens=16, probes=1)
  assert smooth["high_low_ratio"] < 0.3 < 3 < rough["high_low_ratio"]


@pytest.mark.parametrize("a_init, quirks", [("s4d_real", True), ("s4d_lin", True),
                                            ("random_real", False)])
def test_ssm_operator_is_the_scan(a_init, quirks):
  """y = M u for any u, with the scan's own delta, B and C (D and the z branch left out)."""
  mixer = MambaVisionMixer(24, a_init=a_init, release_quirks=quirks, rngs=nnx.Rngs(2))
  rng = np.random.default_rng(3)
  x = rng.standard_normal((13, 24)).astype(np.float32)
  m = probing.ssm_operator(mixer, x)
  assert m.shape == (24, 13, 13)
  np.testing.assert_array_equal(m[:, 0, 1:], 0)  # causal: the scan runs forward
  args, _ = mixer.scan_inputs(jnp.asarray(x)[None])
  u = rng.standard_normal((1, 13, 24)).astype(np.float32)
  y = np.asarray(selective_scan(**{**args, "u": jnp.asarray(u), "D": None}, impl="reference"))
  want = np.einsum("cts,sc->tc", m, u[0])
  np.testing.assert_allclose(y[0], want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


def test_backbone_mixers_cover_every_block():
  model = models.create("mvhybrid", rngs=nnx.Rngs(0), depth=2, dim=16, num_heads=2)
  rows = probing.backbone_mixers(model, tokens=8, probes=1)
  assert model.blocks[0].mixer.scan_impl == "auto"  # jvp ran on a copy with the reference scan
  assert [r["kind"] for r in rows] == ["MambaVisionMixer", "Attention"]
  assert "ssm" in rows[0] and "ssm" not in rows[1]
  assert rows[0]["gain"].shape == (5,) and np.all(rows[0]["gain"] > 0)

# --- feature maps ----------------------------------------------------------------------------


def test_relative_log_amplitude_of_known_spectra():
  """Maps made of diagonal cosines of known amplitudes: |FFT2| at (k, k) is a_k n^2 / 2 (a_k n^2
  at Nyquist), at DC c n^2; random phases and channels do not change it."""
  n, rng = 8, np.random.default_rng(4)
  amp = rng.uniform(0.5, 2.0, n // 2 + 1)
  c = 3.0
  yy, xx = np.mgrid[0:n, 0:n]
  maps = np.zeros((3, n, n, 2))
  for i in range(3):
    for ch in range(2):
      maps[i, :, :, ch] = c + sum(amp[k] * np.cos(2 * np.pi * k * (yy + xx) / n
                                                  + (rng.uniform(0, 2 * np.pi) if k < n // 2 else 0))
                                  for k in range(1, n // 2 + 1))
  freqs, delta = probing.relative_log_amplitude(probing.log_amplitude(maps))
  np.testing.assert_allclose(freqs, np.arange(n // 2 + 1) * 2 / n)
  want = np.log(np.r_[c, amp[1:-1] / 2, amp[-1]]) - np.log(c)
  np.testing.assert_allclose(delta, want, atol=1e-4)
  with pytest.raises(ValueError, match="square"):
    probing.relative_log_amplitude(np.zeros((4, 6)))


def test_layer_spectra_of_the_block_input_match_numpy():
  model = models.create("vit_12", rngs=nnx.Rngs(0), depth=2, dim=16, num_heads=2)
  model.eval()
  images = probing.synthetic_patches(5, 64)
  s = probing.layer_spectra(model, images, batch_size=2)
  assert s["delta"].shape == (3, 3) and np.all(s["delta"][:, 0] == 0)
  x = jnp.asarray(features.normalise_images(images))
  grid = np.asarray(model.patch_grid(model.tokens(x), 4, 4), np.float64)
  la = np.log(np.abs(np.fft.fft2(grid, axes=(1, 2))) + 1e-8).mean(axis=(0, 3))
  np.testing.assert_allclose(s["delta"][0], [la[k, k] - la[0, 0] for k in range(3)], atol=1e-4)


def test_user_patches_are_centre_crops(tmp_path):
  rng = np.random.default_rng(8)
  wide = rng.integers(0, 256, (40, 60, 3), np.uint8)  # (h, w): the centre square is columns 10..50
  (tmp_path / "a").mkdir()
  Image.fromarray(wide).save(tmp_path / "a" / "wide.png")
  Image.fromarray(wide[:, :40]).save(tmp_path / "square.png")
  patches = probing.user_patches(str(tmp_path), 5, 40)
  assert patches.shape == (2, 40, 40, 3)
  np.testing.assert_array_equal(patches[0], wide[:, :40])  # the root's files, then a/'s
  np.testing.assert_array_equal(patches[1], wide[:, 10:50])
  (tmp_path / "broken.png").write_bytes(b"\x89PNG no")
  with pytest.raises(ValueError, match="broken.png cannot be read"):
    probing.user_patches(str(tmp_path), 5, 40)
