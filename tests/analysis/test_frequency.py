"""analysis.frequency: band-limited fields and the genes they drive."""

import numpy as np
import pytest

from mvhybrid_jax.analysis import frequency
from mvhybrid_jax.eval import gene_expression

# --- the controlled experiment --------------------------------------------------------------


def test_band_fields_hold_power_only_in_their_band():
  fields = frequency.band_fields(np.random.default_rng(5), 3, 32, (0.1, 0.2))
  np.testing.assert_allclose(fields.mean(axis=(1, 2)), 0, atol=1e-12)
  np.testing.assert_allclose(fields.std(axis=(1, 2)), 1)
  f = np.fft.fftfreq(32)
  r = np.hypot(f[:, None], f[None, :])
  power = np.abs(np.fft.fft2(fields)) ** 2
  assert power[:, (r < 0.1) | (r > 0.2)].max() < 1e-18 * power.max()
  with pytest.raises(ValueError, match="band"):
    frequency.band_fields(np.random.default_rng(0), 1, 16, (0.001, 0.01))


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
  data = frequency.frequency_dataset(160, 64, genes_per_band=2, seed=1,
                                    bands={"low": (0.0, 0.6), "high": (1.5, 3.0)})
  assert data["images"].shape == (160, 64, 64, 3) and data["images"].dtype == np.uint8
  assert data["genes"] == ["low_0", "low_1", "high_0", "high_1"]
  bands = {"low": (0.0, 0.6), "high": (1.5, 3.0)}
  power = _band_power(data["images"], bands)
  full = frequency.frequency_experiment(power, data, k=4)
  assert min(full["pcc"].values()) > 0.5
  only_low = frequency.frequency_experiment(np.c_[power[:, :1], power[:, :1] ** 2], data, k=4)
  assert only_low["pcc"]["low"] > 0.5 > 0.2 > abs(only_low["pcc"]["high"])
  # the experiment's numbers are the gene-expression probe's, grouped by band
  direct = gene_expression.evaluate(power, data["counts"], "random", k=4)
  np.testing.assert_allclose(full["pcc"]["high"], np.mean(direct["per_gene_pcc"][2:]))
