"""Spectral bias, view 4: a controlled experiment. Synthetic H&E-like tiles whose "genes" follow
the amplitude of a low-frequency, a token-scale high-frequency or a fine (sub-patch) pattern;
which backbone and init predicts which, with HEST's ridge probe."""

from __future__ import annotations

import numpy as np

from mvhybrid_jax.data import synthetic
from mvhybrid_jax.eval import gene_expression

# Frequency bands in cycles per patch (token) side: "low" spans five tokens or more (at 112 px
# only the tile's slowest patterns), "high" sits near the token grid's Nyquist frequency (0.5)
# and "fine" inside a patch (nuclear-scale texture, which the patch embedding rather than the
# token mixer resolves).
BANDS = {"low": (0.0, 0.2), "high": (0.3, 0.5), "fine": (2.5, 5.0)}


def band_fields(rng, n: int, size: int, band: tuple[float, float]) -> np.ndarray:
  """(n, size, size) Gaussian random fields with all their power in the annulus of radial
  frequencies `band` (cycles per pixel), zero mean and unit standard deviation each."""
  f = np.fft.fftfreq(size)
  radius = np.hypot(f[:, None], f[None, :])
  mask = (radius >= band[0]) & (radius <= band[1]) & (radius > 0)  # zero mean: no DC
  if not mask.any():
    raise ValueError(f"band: no frequency of a {size}-pixel image lies in {band} cycles/pixel")
  fields = np.fft.ifft2(np.fft.fft2(rng.standard_normal((n, size, size))) * mask).real
  fields -= fields.mean(axis=(1, 2), keepdims=True)
  return fields / fields.std(axis=(1, 2), keepdims=True)


def frequency_dataset(n: int = 256, size: int = 224, *, patch_size: int = 16,
                      genes_per_band: int = 3, bands: dict | None = None, seed: int = 0) -> dict:
  """Tiles whose haematoxylin density is a sum of band-limited fields, one per band, each with its
  own random amplitude per tile; each band's genes follow that amplitude (Poisson counts).

  {"images" (n, size, size, 3) uint8, "counts" (n, genes), "genes", "gene_band" (genes,),
   "bands", "amplitude" (n, bands)}. A probe can only predict a band's genes from features that
  see that band's energy: the fields have random phases and zero mean.
  """
  bands = dict(BANDS if bands is None else bands)
  rng = np.random.default_rng(seed)
  amplitude = rng.uniform(0.0, 1.0, (n, len(bands)))
  h = np.full((n, size, size), 0.6)
  for b, (lo, hi) in enumerate(bands.values()):
    h += 0.22 * amplitude[:, b, None, None] * band_fields(rng, n, size, (lo / patch_size,
                                                                        hi / patch_size))
  e = 0.45 + 0.03 * rng.standard_normal((n, size, size))
  od = np.clip(h, 0, None)[..., None] * synthetic.H_OD + np.clip(e, 0, None)[..., None] * synthetic.E_OD
  images = np.clip(255.0 * np.exp(-od), 0, 255).astype(np.uint8)
  gene_band, loading = [], []
  for name in bands:
    gene_band += [name] * genes_per_band
    loading.append(rng.uniform(1.0, 2.0, genes_per_band) * rng.choice([-1, 1], genes_per_band))
  weights = np.zeros((len(bands), len(gene_band)))
  for b in range(len(bands)):
    weights[b, b * genes_per_band:(b + 1) * genes_per_band] = loading[b]
  counts = rng.poisson(np.exp(2.0 + (amplitude - 0.5) @ weights))
  genes = [f"{band}_{i}" for band in bands for i in range(genes_per_band)]
  return dict(images=images, counts=counts, genes=genes, gene_band=np.array(gene_band),
              bands=list(bands), amplitude=amplitude)


def frequency_experiment(features: np.ndarray, data: dict, *, k: int = 5, seed: int = 0) -> dict:
  """HEST's ridge probe, k-fold over tiles: {"pcc": {band: mean per-gene PCC}, "per_gene"}."""
  result = gene_expression.evaluate(features, data["counts"], "random", k=k, seed=seed)
  r = np.asarray(result["per_gene_pcc"])
  return dict(pcc={b: float(np.nanmean(r[data["gene_band"] == b])) for b in data["bands"]},
              per_gene=dict(zip(data["genes"], r.tolist())))
