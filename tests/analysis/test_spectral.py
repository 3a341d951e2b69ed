"""analysis.spectral against closed forms, numerical integration, the scan and known spectra."""

import json

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from PIL import Image

from kernels import selective_scan
from mvhybrid_jax import checkpoints, models
from mvhybrid_jax.analysis import spectral
from mvhybrid_jax.eval import features, gene_expression
from mvhybrid_jax.models.mamba_vision import MambaVisionMixer

# --- theory ----------------------------------------------------------------------------------


def test_one_negative_real_eigenvalue_is_a_monotone_low_pass():
  """G(iw) = cb / (iw + x): |G| = |cb| / sqrt(w^2 + x^2), falling with w."""
  x, cb = 2.5, 0.7 - 0.3j
  w = np.linspace(0, 200, 4001)
  g = spectral.transfer_function([-x], w, bc=[cb])
  np.testing.assert_allclose(np.abs(g), abs(cb) / np.sqrt(w ** 2 + x ** 2), rtol=1e-12)
  assert np.all(np.diff(np.abs(g)) < 0)


@pytest.mark.parametrize("x, y", [(-0.1, 5.0), (-0.3, 20.0)])
def test_a_complex_pair_peaks_near_its_imaginary_part(x, y):
  a = np.array([x + 1j * y, x - 1j * y])
  w = np.linspace(0, 2 * y, 200001)
  peak = w[np.argmax(np.abs(spectral.transfer_function(a, w)))]
  assert abs(peak - y) < abs(x)
  assert np.abs(spectral.transfer_function(a, [y]))[0] > 10 * np.abs(
      spectral.transfer_function(a, [0.0]))[0]


def _tv_by_trapezoid(a, lower, bc):
  """An independent total variation: |dG/dw| by central differences of G on a fine grid up to a
  large W, plus the tail beyond W, where |dG/dw| ~ |sum bc| / w^2."""
  w = lower + np.concatenate([np.linspace(0, 200, 400001)[:-1], np.geomspace(200, 1e7, 200001)])
  g = spectral.transfer_function(a, w, bc)
  speed = np.abs(np.gradient(g, w))
  return np.trapezoid(speed, w) + abs(np.sum(bc)) / w[-1]


@pytest.mark.parametrize("kind", ["s4d_real", "s4d_lin", "random_real", "mixed"])
def test_total_variation_and_its_bound(kind):
  rng = np.random.default_rng(0)
  if kind == "mixed":
    a = -rng.uniform(0.2, 3.0, 6) + 1j * rng.uniform(-5, 5, 6)
  else:
    a = spectral.eigenvalues(kind, 8)
  bc = rng.normal(size=len(a)) + 1j * rng.normal(size=len(a))
  top = max(a.imag.max(), 0.0)
  for lower in top + np.array([0.5, 3.0, 40.0]):
    tv = spectral.total_variation(a, lower, bc)
    np.testing.assert_allclose(tv, _tv_by_trapezoid(a, lower, bc), rtol=2e-3)
    assert tv <= spectral.tv_bound(a, lower, bc) * (1 + 1e-9)


def test_total_variation_of_one_real_eigenvalue_is_in_closed_form():
  """int_B^inf |cb| / (w^2 + x^2) dw = |cb| (pi/2 - arctan(B/x)) / x, and the bound is |cb|/B."""
  x, cb = 3.0, 2.0
  for lower in (0.1, 1.0, 30.0):
    want = cb * (np.pi / 2 - np.arctan(lower / x)) / x
    np.testing.assert_allclose(spectral.total_variation([-x], lower, [cb]), want, rtol=1e-8)
    assert spectral.tv_bound([-x], lower, [cb]) == pytest.approx(cb / lower)


def test_the_bound_needs_lower_above_the_imaginary_parts():
  with pytest.raises(ValueError, match="lower"):
    spectral.tv_bound(spectral.eigenvalues("s4d_lin", 4), 1.0)


def test_eigenvalues_follow_the_inits():
  np.testing.assert_array_equal(spectral.eigenvalues("s4d_real", 4), [-1, -2, -3, -4])
  np.testing.assert_allclose(spectral.eigenvalues("s4d_lin", 3),
                             [-0.5, -0.5 + 1j * np.pi, -0.5 + 2j * np.pi], rtol=1e-6)


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
  s = spectral.mixer_spectrum(CircularConv(h), dim, tokens=L, probes=2)
  np.testing.assert_allclose(s["gain"], np.abs(np.fft.fft(h))[:L // 2 + 1] ** 2, rtol=1e-5,
                             atol=1e-6)
  t, src = np.meshgrid(np.arange(L), np.arange(L), indexing="ij")
  np.testing.assert_allclose(s["kernel"], h[(t - src) % L] ** 2, rtol=1e-5, atol=1e-7)
  assert s["lag"].shape == (2 * L - 1,)
  np.testing.assert_allclose(s["lag"][L - 1], h[0] ** 2, rtol=1e-5)  # lag 0


def test_a_smoothing_mixer_is_low_pass_and_a_differencing_one_high_pass():
  smooth = spectral.mixer_spectrum(CircularConv([0.25, 0.5, 0.25]), 4, tokens=16, probes=1)
  rough = spectral.mixer_spectrum(CircularConv([0.5, -0.5]), 4, tokens=16, probes=1)
  assert smooth["high_low_ratio"] < 0.3 < 3 < rough["high_low_ratio"]


@pytest.mark.parametrize("a_init, quirks", [("s4d_real", True), ("s4d_lin", True),
                                            ("random_real", False)])
def test_ssm_operator_is_the_scan(a_init, quirks):
  """y = M u for any u, with the scan's own delta, B and C (D and the z branch left out)."""
  mixer = MambaVisionMixer(24, a_init=a_init, release_quirks=quirks, rngs=nnx.Rngs(2))
  rng = np.random.default_rng(3)
  x = rng.standard_normal((13, 24)).astype(np.float32)
  m = spectral.ssm_operator(mixer, x)
  assert m.shape == (24, 13, 13)
  np.testing.assert_array_equal(m[:, 0, 1:], 0)  # causal: the scan runs forward
  args, _ = mixer.scan_inputs(jnp.asarray(x)[None])
  u = rng.standard_normal((1, 13, 24)).astype(np.float32)
  y = np.asarray(selective_scan(**{**args, "u": jnp.asarray(u), "D": None}, impl="reference"))
  want = np.einsum("cts,sc->tc", m, u[0])
  np.testing.assert_allclose(y[0], want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


def test_backbone_mixers_cover_every_block():
  model = models.create("mvhybrid", rngs=nnx.Rngs(0), depth=2, dim=16, num_heads=2)
  rows = spectral.backbone_mixers(model, tokens=8, probes=1)
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
  freqs, delta = spectral.relative_log_amplitude(spectral.log_amplitude(maps))
  np.testing.assert_allclose(freqs, np.arange(n // 2 + 1) * 2 / n)
  want = np.log(np.r_[c, amp[1:-1] / 2, amp[-1]]) - np.log(c)
  np.testing.assert_allclose(delta, want, atol=1e-4)
  with pytest.raises(ValueError, match="square"):
    spectral.relative_log_amplitude(np.zeros((4, 6)))


def test_layer_spectra_of_the_block_input_match_numpy():
  model = models.create("vit_12", rngs=nnx.Rngs(0), depth=2, dim=16, num_heads=2)
  model.eval()
  images = spectral.synthetic_patches(5, 64)
  s = spectral.layer_spectra(model, images, batch_size=2)
  assert s["delta"].shape == (3, 3) and np.all(s["delta"][:, 0] == 0)
  x = jnp.asarray(features.normalise_images(images))
  grid = np.asarray(model.patch_grid(model.tokens(x), 4, 4), np.float64)
  la = np.log(np.abs(np.fft.fft2(grid, axes=(1, 2))) + 1e-8).mean(axis=(0, 3))
  np.testing.assert_allclose(s["delta"][0], [la[k, k] - la[0, 0] for k in range(3)], atol=1e-4)


# --- the controlled experiment --------------------------------------------------------------


def test_band_fields_hold_power_only_in_their_band():
  fields = spectral.band_fields(np.random.default_rng(5), 3, 32, (0.1, 0.2))
  np.testing.assert_allclose(fields.mean(axis=(1, 2)), 0, atol=1e-12)
  np.testing.assert_allclose(fields.std(axis=(1, 2)), 1)
  f = np.fft.fftfreq(32)
  r = np.hypot(f[:, None], f[None, :])
  power = np.abs(np.fft.fft2(fields)) ** 2
  assert power[:, (r < 0.1) | (r > 0.2)].max() < 1e-18 * power.max()
  with pytest.raises(ValueError, match="band"):
    spectral.band_fields(np.random.default_rng(0), 1, 16, (0.001, 0.01))


def _band_power(images, bands, patch_size=16):
  """The oracle: the image's log power in each band (grey level, numpy FFT)."""
  grey = images.astype(np.float64).mean(-1)
  f = np.fft.fftfreq(grey.shape[1])
  r = np.hypot(f[:, None], f[None, :]) * patch_size
  power = np.abs(np.fft.fft2(grey - grey.mean(axis=(1, 2), keepdims=True))) ** 2
  return np.stack([np.log(power[:, (r >= lo) & (r <= hi)].sum(-1)) for lo, hi in bands.values()],
                  -1)


def test_each_band_drives_only_its_genes():
  """The band-power oracle predicts every band's genes from its own band; a probe without a
  band's power cannot predict that band's genes."""
  data = spectral.frequency_dataset(160, 64, genes_per_band=2, seed=1,
                                    bands={"low": (0.0, 0.6), "high": (1.5, 3.0)})
  assert data["images"].shape == (160, 64, 64, 3) and data["images"].dtype == np.uint8
  assert data["genes"] == ["low_0", "low_1", "high_0", "high_1"]
  bands = {"low": (0.0, 0.6), "high": (1.5, 3.0)}
  power = _band_power(data["images"], bands)
  full = spectral.frequency_experiment(power, data, k=4)
  assert min(full["pcc"].values()) > 0.5
  only_low = spectral.frequency_experiment(np.c_[power[:, :1], power[:, :1] ** 2], data, k=4)
  assert only_low["pcc"]["low"] > 0.5 > 0.2 > abs(only_low["pcc"]["high"])
  # the experiment's numbers are the gene-expression probe's, grouped by band
  direct = gene_expression.evaluate(power, data["counts"], "random", k=4)
  np.testing.assert_allclose(full["pcc"]["high"], np.mean(direct["per_gene_pcc"][2:]))


# --- checkpoints and the command line --------------------------------------------------------


def test_learned_eigenvalues_are_read_from_a_checkpoint(tmp_path):
  model = models.create("mvhybrid", rngs=nnx.Rngs(0), depth=2, dim=16, num_heads=2)
  a_log = np.log(np.random.default_rng(6).uniform(0.05, 30.0, model.blocks[0].mixer.A_log.shape))
  model.blocks[0].mixer.A_log[...] = jnp.asarray(a_log, jnp.float32)
  checkpoints.save_backbone(str(tmp_path / "export"), model,
                            dict(name="mvhybrid", depth=2, dim=16, num_heads=2))
  loaded = spectral.backbones(str(tmp_path / "export"), "mvhybrid", {}, ["s4d_real"])
  (label, m), = loaded.items()
  (row,) = spectral.eigenvalue_summary(m)
  assert row["layer"] == 0 and row["param"].endswith("A_log")
  np.testing.assert_allclose(row["real"], [-np.exp(a_log).max(), -np.exp(a_log).min()], rtol=1e-5)
  assert row["tv_bound"]["10"] == pytest.approx(a_log.shape[-1] / 10.0)  # bc = 1, y = 0: N / B


def test_user_patches_are_centre_crops(tmp_path):
  rng = np.random.default_rng(8)
  wide = rng.integers(0, 256, (40, 60, 3), np.uint8)  # (h, w): the centre square is columns 10..50
  (tmp_path / "a").mkdir()
  Image.fromarray(wide).save(tmp_path / "a" / "wide.png")
  Image.fromarray(wide[:, :40]).save(tmp_path / "square.png")
  patches = spectral.user_patches(str(tmp_path), 5, 40)
  assert patches.shape == (2, 40, 40, 3)
  np.testing.assert_array_equal(patches[0], wide[:, :40])  # the root's files, then a/'s
  np.testing.assert_array_equal(patches[1], wide[:, 10:50])
  (tmp_path / "broken.png").write_bytes(b"\x89PNG no")
  with pytest.raises(ValueError, match="broken.png cannot be read"):
    spectral.user_patches(str(tmp_path), 5, 40)


def test_cli_writes_figures_and_numbers(tmp_path, capsys):
  out = tmp_path / "spectral"
  tiles = tmp_path / "tiles"
  tiles.mkdir()
  for i, patch in enumerate(spectral.synthetic_patches(3, 96, seed=1)):
    Image.fromarray(patch).save(tiles / f"{i}.png")
  spectral.main(["--smoke", "--out", str(out), "--a_inits", "s4d_real,s4d_lin",
                 "--set", "depth=2", "--set", "dim=16", "--images", str(tiles)])
  for name in ("theory.png", "mixers.png", "features.png", "experiment.png", "spectral.json"):
    assert (out / name).stat().st_size > 0
  assert not list(out.glob("*.tmp"))
  results = json.loads((out / "spectral.json").read_text())
  assert results["feature_images"] == str(tiles)
  assert set(results["backbones"]) == {"random mvhybrid (s4d_real)", "random mvhybrid (s4d_lin)"}
  r = results["backbones"]["random mvhybrid (s4d_lin)"]
  assert len(r["mixers"]) == 2 and len(r["features"]["delta"]) == 3
  assert r["eigenvalues"][0]["imag"][1] > 3  # s4d_lin: imaginary parts up to 15 pi
  assert set(r["experiment"]["pcc"]) == set(spectral.BANDS)
  assert "| random mvhybrid (s4d_real) |" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--set", "depth"], "--set: expected KEY=VALUE"),
    (["--a_inits", "s4d_real,bogus"], "--a_inits"),
    (["--checkpoint", "/nonexistent/run"], "config.checkpoint"),
])
def test_cli_bad_input(tmp_path, argv, message):
  with pytest.raises(SystemExit, match=message):
    spectral.main(["--smoke", "--out", str(tmp_path / "out"), *argv])
  assert not (tmp_path / "out").exists()
