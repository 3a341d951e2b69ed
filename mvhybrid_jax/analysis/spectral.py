"""Spectral bias of state space layers: test the paper's hypothesis on any backbone and checkpoint.

The paper credits MV_Hybrid's gains to a low-frequency bias of SSMs whose eigenvalues are negative
and real (spec section 5). Four views of it, from theory to data:

1. Theory. A diagonal SSM with eigenvalues a_j = x_j + i y_j has the transfer function
   G(iw) = sum_j c_j b_j / (iw - a_j); the total variation of G over [B, inf) is at most
   sum_j |c_j b_j| / (B - y_j) (Yu et al., ICLR 2025). Here for the inits of
   models.mamba_vision.eigenvalue_init and for the eigenvalues a checkpoint learned.
2. Mixers. Each token mixer, linearised at an input: its token-mixing kernel ||dy_t / dx_s||^2
   and its gain to sinusoids along the token sequence (a low-pass mixer attenuates high
   frequencies), estimated with Rademacher probes through forward-mode derivatives.
3. Feature maps. The relative log amplitude of the 2-D Fourier transform of each layer's patch
   tokens, high vs low frequency by depth (Park & Kim, "How do vision transformers work?", 2022).
4. A controlled experiment. Synthetic H&E-like tiles whose "genes" follow the amplitude of a
   low-frequency, a token-scale high-frequency or a fine (sub-patch) pattern; which backbone and
   init predicts which, with HEST's ridge probe.

    python -m mvhybrid_jax.analysis.spectral --checkpoint=runs/mvhybrid,random --out=runs/spectral
    python -m mvhybrid_jax.analysis.spectral --smoke --out=/tmp/spectral      # CPU, a minute

writes theory.png, mixers.png, features.png, experiment.png and spectral.json into --out.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from scipy import integrate

from PIL import Image, UnidentifiedImageError

from mvhybrid_jax.data import folders, synthetic
from mvhybrid_jax.eval import backbones as eval_backbones
from mvhybrid_jax.eval import features as eval_features
from mvhybrid_jax.eval import gene_expression
from mvhybrid_jax.models import mamba_vision
from mvhybrid_jax.models.vim import VimMixer

# --- 1. Theory: a diagonal SSM's transfer function ------------------------------------------


def eigenvalues(kind: str, n: int = 16, seed: int = 0) -> np.ndarray:
  """(n,) complex128: one channel of the model's eigenvalue init (s4d_real, s4d_lin, random_real)."""
  a = mamba_vision.eigenvalue_init(kind, 1, n, jax.random.key(seed))[0]
  return np.asarray(a).astype(np.complex128)


def _bc(a, bc):
  return np.ones(a.shape, np.complex128) if bc is None else np.asarray(bc, np.complex128)


def transfer_function(a, w, bc=None) -> np.ndarray:
  """G(iw) = sum_j bc_j / (iw - a_j) at frequencies w; bc_j = c_j b_j (default 1)."""
  a = np.asarray(a, np.complex128)
  w = np.asarray(w, np.float64)
  return (_bc(a, bc) / (1j * w[..., None] - a)).sum(-1)


def _check_lower(a, lower):
  top = float(np.max(np.asarray(a).imag))
  if lower <= top:
    raise ValueError(f"lower: the bound needs B above every imaginary part ({top:.4g}), got {lower}")


def tv_bound(a, lower: float, bc=None) -> float:
  """Spec section 5's bound on the total variation of G over [lower, inf):
  sum_j |bc_j| / (lower - y_j)."""
  a = np.asarray(a, np.complex128)
  _check_lower(a, lower)
  return float((np.abs(_bc(a, bc)) / (lower - a.imag)).sum())


def total_variation(a, lower: float, bc=None) -> float:
  """int_lower^inf |dG/dw| dw by adaptive quadrature, dG/dw = -i sum_j bc_j / (iw - a_j)^2."""
  a = np.asarray(a, np.complex128)
  bc = _bc(a, bc)
  speed = lambda w: abs((bc / (1j * w - a) ** 2).sum())
  # The integrand's structure sits within a few |x_j| of the y_j: integrate that part finely.
  split = max(lower, float(a.imag.max())) + 50.0 * (float(np.abs(a.real).max()) + 1.0)
  peaks = [y for y in np.unique(a.imag) if lower < y < split]
  head = integrate.quad(speed, lower, split, points=peaks or None, limit=500)[0]
  return head + integrate.quad(speed, split, np.inf, limit=200)[0]


def theory(kinds=mamba_vision.A_INITS, n: int = 16, n_lower: int = 24) -> dict:
  """Per init: eigenvalues, |G(iw)| on a log grid, and the numerical TV against the bound for
  lower limits B from just above the largest imaginary part."""
  out = {}
  w = np.logspace(-2, 3, 200)
  for kind in kinds:
    a = eigenvalues(kind, n)
    top = max(float(a.imag.max()), 0.0)
    lower = top + np.logspace(-1, 3, n_lower)
    out[kind] = dict(eigenvalues=[[z.real, z.imag] for z in a.tolist()], w=w.tolist(),
                     gain=np.abs(transfer_function(a, w)).tolist(), lower=lower.tolist(),
                     tv=[total_variation(a, b) for b in lower],
                     bound=[tv_bound(a, b) for b in lower])
  return out


def learned_eigenvalues(model) -> list[dict]:
  """Every SSM eigenvalue array of a backbone, per block: A = -exp(A_log) (MambaVision: (channels,
  state); Vision Mamba: one per direction; Hydra: one per head)."""
  out = []
  for i, block in enumerate(model.blocks):
    leaves = jax.tree_util.tree_flatten_with_path(nnx.state(block.mixer, nnx.Param))[0]
    for path, leaf in leaves:
      names = [str(getattr(p, "key", getattr(p, "name", p))) for p in path]
      if "A_log" in names:
        a = -np.exp(np.asarray(leaf).astype(np.complex128))
        out.append(dict(layer=i, param=".".join(n for n in names if n != "value"), a=a))
  return out


def eigenvalue_summary(model, lowers=(1.0, 10.0, 100.0)) -> list[dict]:
  """Per eigenvalue array: the ranges of real and imaginary parts, and the mean over channels of
  the TV bound (bc = 1) at a few lower limits above the largest imaginary part."""
  rows = []
  for item in learned_eigenvalues(model):
    a = item["a"].reshape(-1, item["a"].shape[-1]) if item["a"].ndim > 1 else item["a"][None]
    top = max(float(a.imag.max()), 0.0)
    rows.append(dict(layer=item["layer"], param=item["param"],
                     real=[float(a.real.min()), float(a.real.max())],
                     imag=[float(a.imag.min()), float(a.imag.max())],
                     tv_bound={f"{top + b:g}": float(np.mean([tv_bound(r, top + b) for r in a]))
                               for b in lowers}))
  return rows


# --- 2. Mixers: token-mixing kernel and frequency response -----------------------------------


def _forward_mode_scans(mixer):
  """A copy of `mixer` whose selective scans are the reference's: jax.jvp needs a scan written
  in plain JAX, and the sequential (CPU) and Pallas (GPU) scans define reverse mode only."""
  mixer = nnx.clone(mixer)
  for _, module in nnx.iter_graph(mixer):
    if getattr(module, "scan_impl", "reference") not in ("reference", "xla"):
      module.scan_impl = "reference"
  return mixer


@nnx.jit
def _responses(mixer, x, v):
  """R[s, t] = dy_t/dx_s v: the mixer's output change at every token t for the probe v at
  token s. x (tokens, dim), v (dim,) -> (tokens_src, tokens_out, dim)."""
  f = lambda x: mixer(x[None])[0]
  tangents = jnp.eye(x.shape[0], dtype=x.dtype)[:, :, None] * v  # (src, tokens, dim)
  return jax.vmap(lambda t: jax.jvp(f, (x,), (t,))[1])(tangents)


def _kernel_and_power(r):
  """Responses r (src, out, dim) -> kernel[t, s] = ||r[s, t]||^2 / dim and the power
  ||sum_s exp(-2 pi i k s / L) r[s]||^2 / (L dim) for every k."""
  n, _, dim = r.shape
  return (r ** 2).sum(-1).T / dim, (np.abs(np.fft.fft(r, axis=0)) ** 2).sum((1, 2)) / (n * dim)


def _summary(kernel, power) -> dict:
  n = len(power)
  lag = np.array([np.diagonal(kernel, offset=-l).mean() for l in range(-(n - 1), n)])
  gain = power[:n // 2 + 1]
  half = len(gain) // 2
  return dict(kernel=kernel, lag=lag, lags=np.arange(-(n - 1), n), gain=gain,
              freqs=np.arange(len(gain)) / n,  # cycles per token
              high_low_ratio=float(gain[half:].mean() / gain[:half].mean()))


def _base_input(tokens, dim, seed):
  """Standard normal tokens: the scale a pre-norm block feeds its mixer."""
  return np.random.default_rng(seed).standard_normal((tokens, dim)).astype(np.float32)


def mixer_spectrum(mixer, dim: int, *, tokens: int = 64, probes: int = 4, seed: int = 0,
                   x=None) -> dict:
  """The linearised token mixing of `mixer` ((batch, tokens, dim) -> same) at x (default:
  standard normal tokens).

  kernel[t, s] = ||dy_t/dx_s||_F^2 / dim, lag[l] = mean_t kernel[t, t - l] for l = -(L-1)..L-1,
  gain[k] = ||J x_k||^2 / ||x_k||^2 for inputs x_k = v exp(2 pi i k s / L) along the tokens,
  k = 0..L//2, and high_low_ratio = mean gain over the upper half of those frequencies / over the
  lower half (below 1: low-pass). Rademacher probes v make each estimate exact for a mixer that
  acts on every channel alike, e.g. a circular convolution with kernel h, where gain = |DFT(h)|^2.
  """
  x = jnp.asarray(_base_input(tokens, dim, seed) if x is None else x, jnp.float32)
  n = x.shape[0]
  mixer = _forward_mode_scans(mixer)
  kernel, power = np.zeros((n, n)), np.zeros(n)
  signs = np.random.default_rng(seed + 1).choice([-1.0, 1.0], (probes, dim)).astype(np.float32)
  for v in signs:
    r = np.asarray(_responses(mixer, x, jnp.asarray(v)), np.float64)  # (src, out, dim)
    k, p = _kernel_and_power(r)
    kernel, power = kernel + k / probes, power + p / probes
  return _summary(kernel, power)


def ssm_operator(mixer, x) -> np.ndarray:
  """A MambaVisionMixer's selective scan as the linear map it applies to its input u at the token
  input x (batch-free, (tokens, dim)): y_t = sum_{s<=t} M[c, t, s] u_s + D u_t with

      M[c, t, s] = sum_n C_t[n] exp(A[c, n] (S_t[c] - S_s[c])) delta_s[c] B_s[n],
      S_t = delta_1 + ... + delta_t,

  the SSM's "hidden attention" (Ali et al., 2024). (channels, tokens, tokens), float64; the
  real part for complex eigenvalues, as the scan returns."""
  args, _ = mixer.scan_inputs(jnp.asarray(x, jnp.float32)[None])
  d = np.asarray(args["delta"], np.float64)[0]  # (tokens, channels)
  if args["delta_bias"] is not None:
    d = d + np.asarray(args["delta_bias"], np.float64)
  if args["delta_softplus"]:
    d = np.logaddexp(0.0, d)
  a = np.asarray(args["A"]).astype(np.complex128)  # (channels, state)
  b = np.asarray(args["B"], np.float64)[0]  # (tokens, state)
  c = np.asarray(args["C"], np.float64)[0]
  s = np.cumsum(d, axis=0)
  causal = np.tril(np.ones((len(d), len(d)), bool))[:, :, None]  # (t, s, 1)
  gap = np.where(causal, s[:, None] - s[None, :], 0.0)  # (t, s, channels), S_t - S_s
  m = np.zeros(gap.shape, np.complex128)
  for n in range(a.shape[1]):
    m += c[:, None, n, None] * b[None, :, n, None] * np.exp(a[:, n] * gap)
  m = (m * d[None] * causal).real
  return m.transpose(2, 0, 1)


def ssm_spectrum(mixer, dim: int, *, tokens: int = 64, seed: int = 0, x=None) -> dict:
  """mixer_spectrum's numbers for the SSM alone (ssm_operator, without the D skip): exact, as
  the operator acts on each channel separately."""
  x = _base_input(tokens, dim, seed) if x is None else x
  m = ssm_operator(mixer, x)  # (channels, out, src)
  return _summary(*_kernel_and_power(m.transpose(2, 1, 0)))


def backbone_mixers(model, *, tokens: int = 64, probes: int = 4, seed: int = 0) -> list[dict]:
  """mixer_spectrum of every block's token mixer (all at the same input), with its kind; for
  MambaVisionMixers also the SSM alone ("ssm")."""
  out = []
  for i, block in enumerate(model.blocks):
    row = dict(layer=i, kind=type(block.mixer).__name__,
               **mixer_spectrum(block.mixer, model.dim, tokens=tokens, probes=probes, seed=seed))
    if isinstance(block.mixer, mamba_vision.MambaVisionMixer):
      row["ssm"] = ssm_spectrum(block.mixer, model.dim, tokens=tokens, seed=seed)
    out.append(row)
  return out


# --- 3. Feature maps: relative log amplitude by depth ----------------------------------------


def log_amplitude(maps) -> jax.Array:
  """Feature maps (n, h, w, channels) -> the mean over maps and channels of log |FFT2| (h, w)."""
  f = jnp.fft.fft2(jnp.asarray(maps, jnp.float32), axes=(1, 2))
  return jnp.log(jnp.abs(f) + 1e-8).mean(axis=(0, 3))


def relative_log_amplitude(mean_log_amplitude) -> tuple[np.ndarray, np.ndarray]:
  """(frequencies in units of pi rad per token, log amplitude minus its DC value) along the
  diagonal k = (j, j), j = 0..h//2, as Park & Kim plot it. Needs a square grid."""
  la = np.asarray(mean_log_amplitude, np.float64)
  h, w = la.shape
  if h != w:
    raise ValueError(f"feature maps: the diagonal spectrum needs a square token grid, got {h}x{w}")
  j = np.arange(h // 2 + 1)
  diag = la[j, j]
  return 2.0 * j / h, diag - diag[0]


def layer_spectra(model, images, *, batch_size: int = 16) -> dict:
  """Relative log amplitude of the patch tokens of the block input (depth 0) and after each
  block: {"freqs", "delta" (depth + 1, freqs), "high" (delta at the highest frequency)}."""
  images = np.asarray(images)
  grid = (images.shape[1] // model.patch_size, images.shape[2] // model.patch_size)
  graphdef, state = nnx.split(model)

  @jax.jit
  def batch_log_amplitude(state, x):
    m = nnx.merge(graphdef, state)
    return jnp.stack([log_amplitude(m.patch_grid(s, *grid)) for s in m.hidden_states(x)])

  total, count = 0.0, 0
  for start in range(0, len(images), batch_size):
    x = eval_features.normalise_images(images[start:start + batch_size])
    total = total + np.asarray(batch_log_amplitude(state, jnp.asarray(x)), np.float64) * len(x)
    count += len(x)
  rows = [relative_log_amplitude(la) for la in total / count]
  delta = np.stack([d for _, d in rows])
  return dict(freqs=rows[0][0], delta=delta, high=delta[:, -1])


def synthetic_patches(n: int, size: int, seed: int = 0) -> np.ndarray:
  """(n, size, size, 3) uint8 H&E-like patches of random tissue mixes from four studies."""
  rng = np.random.default_rng(seed)
  studies = synthetic.make_studies(4, seed)
  return np.stack([synthetic.render_patch(rng, rng.dirichlet(np.full(len(synthetic.CLASSES), 0.5)),
                                          studies[i % 4], size) for i in range(n)])


def user_patches(root: str, n: int, size: int, seed: int = 0) -> np.ndarray:
  """(<= n, size, size, 3) uint8: a random sample of a folder's (or list file's) images
  (data.folders.list_images), each centre-cropped to a square and resized to size."""
  paths, _, _ = folders.list_images(root)
  pick = np.sort(np.random.default_rng(seed).choice(len(paths), min(n, len(paths)), replace=False))
  out = []
  for i in pick:
    try:
      image = Image.open(paths[i]).convert("RGB")
    except (OSError, UnidentifiedImageError) as e:
      raise ValueError(f"--images: {paths[i]} cannot be read as an image: {e}") from e
    w, h = image.size
    side = min(w, h)
    box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
    out.append(np.asarray(image.resize((size, size), Image.BICUBIC, box=box)))
  return np.stack(out)


# --- 4. Controlled experiment: genes driven by patterns of known frequency ---------------------

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


# --- Checkpoints and the command line ---------------------------------------------------------

SMOKE = dict(overrides=dict(depth=2, dim=32, num_heads=2), image_size=112, n_images=8, tokens=16,
             probes=2, n_spots=64, folds=3)


def backbones(specs: str, name: str, overrides: dict, a_inits: list[str], seed: int = 0) -> dict:
  """label -> model for comma-separated specs as eval.py takes them ("random", a workdir, an
  export, a PyTorch file); "random" gives one model per eigenvalue init when the backbone has
  MambaVision or Vision Mamba mixers."""
  out = {}
  for spec in eval_backbones.specs(specs):
    config = {"name": name, **overrides}
    if spec != "random":
      label, model, _ = eval_backbones.load(spec, config, seed)
      out[label] = model
      continue
    for a_init in a_inits:
      label, model, _ = eval_backbones.load(spec, {**config, "a_init": a_init}, seed)
      if not any(isinstance(b.mixer, (mamba_vision.MambaVisionMixer, VimMixer))
                 for b in model.blocks):
        out[label] = model  # the init does not apply: one model
        break
      out[f"{label} ({a_init})"] = model
  return out


def analyse(models: dict, *, image_size: int, n_images: int, tokens: int, probes: int,
            n_spots: int, folds: int, batch_size: int = 16, seed: int = 0, images: str = "",
            log=print) -> dict:
  """Every view for every backbone; numbers only (figures: analysis.figures). The feature maps
  come from `images` (a folder or list file of tiles) or, when empty, synthetic H&E patches."""
  log("theory: transfer functions and total variation")
  out = dict(theory=theory(), backbones={}, feature_images=images or "synthetic")
  patches = (user_patches(images, n_images, image_size, seed) if images
             else synthetic_patches(n_images, image_size, seed))
  data = frequency_dataset(n_spots, image_size, seed=seed)
  for label, model in models.items():
    log(f"{label}: eigenvalues, mixers, feature maps, experiment")
    feats = eval_features.extract(model, data["images"], batch_size=batch_size, desc=label)
    out["backbones"][label] = dict(
        eigenvalues=eigenvalue_summary(model),
        mixers=backbone_mixers(model, tokens=tokens, probes=probes, seed=seed),
        features=layer_spectra(model, patches, batch_size=batch_size),
        experiment=frequency_experiment(feats, data, k=folds, seed=seed))
  out["experiment_bands"] = {b: list(v) for b, v in BANDS.items()}
  return out


def _jsonable(x):
  if isinstance(x, dict):
    return {k: _jsonable(v) for k, v in x.items() if k != "kernel"}  # kernels: in the figure
  if isinstance(x, (list, tuple)):
    return [_jsonable(v) for v in x]
  if isinstance(x, np.ndarray):
    return x.tolist()
  if isinstance(x, np.generic):
    return x.item()
  return x


def write(results: dict, out: str) -> None:
  """spectral.json and the four figures, each written under a temporary name and renamed."""
  from mvhybrid_jax.analysis import figures
  os.makedirs(out, exist_ok=True)
  figures.theory(results["theory"], os.path.join(out, "theory.png"))
  figures.mixers(results["backbones"], os.path.join(out, "mixers.png"))
  figures.features(results["backbones"], os.path.join(out, "features.png"))
  figures.experiment(results["backbones"], os.path.join(out, "experiment.png"))
  tmp = os.path.join(out, "spectral.json.tmp")
  with open(tmp, "w") as f:
    json.dump(_jsonable(results), f, indent=1)
  os.replace(tmp, os.path.join(out, "spectral.json"))


def table(results: dict) -> str:
  bands = list(BANDS)
  lines = ["| backbone | mixer high/low gain by layer | SSM alone | feature dlogA at pi, last "
           "layer | " + " | ".join(f"PCC {b}" for b in bands) + " |",
           "|---|---|---|---|" + "---|" * len(bands)]
  for label, r in results["backbones"].items():
    ratios = " ".join(f"{m['high_low_ratio']:.2f}" for m in r["mixers"])
    ssm = " ".join(f"{m['ssm']['high_low_ratio']:.2f}" for m in r["mixers"] if "ssm" in m)
    pcc = " | ".join(f"{r['experiment']['pcc'][b]:.3f}" for b in bands)
    lines.append(f"| {label} | {ratios} | {ssm or '-'} | {r['features']['high'][-1]:.2f} | "
                 f"{pcc} |")
  return "\n".join(lines)


def _overrides(items: list[str]) -> dict:
  out = {}
  for item in items:
    key, sep, value = item.partition("=")
    if not sep or not key:
      raise SystemExit(f"--set: expected KEY=VALUE (a models.create setting), got {item!r}")
    try:
      out[key] = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      out[key] = value
  return out


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(prog="python -m mvhybrid_jax.analysis.spectral",
                              description=__doc__.split("\n\n")[0])
  p.add_argument("--checkpoint", default="random",
                 help="'random', a train.py workdir, an exported backbone or a PyTorch file; "
                      "several, comma-separated")
  p.add_argument("--out", required=True, help="folder for the figures and spectral.json")
  p.add_argument("--model", default="mvhybrid", help="backbone name for 'random' and files")
  p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                 help="a models.create setting for 'random' (e.g. depth=12); repeatable")
  p.add_argument("--a_inits", default=",".join(mamba_vision.A_INITS),
                 help="eigenvalue inits of the 'random' backbones, comma-separated")
  p.add_argument("--image_size", type=int, default=224)
  p.add_argument("--images", default="",
                 help="a folder (recursive) or list file of your tiles for the feature spectra; "
                      "default: synthetic H&E patches")
  p.add_argument("--n_images", type=int, default=32, help="patches for the feature spectra")
  p.add_argument("--tokens", type=int, default=64, help="sequence length for the mixer analysis")
  p.add_argument("--probes", type=int, default=8, help="Rademacher probes per mixer")
  p.add_argument("--n_spots", type=int, default=512, help="tiles of the controlled experiment")
  p.add_argument("--folds", type=int, default=5)
  p.add_argument("--batch_size", type=int, default=32)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--smoke", action="store_true", help=f"tiny settings for a quick run: {SMOKE}")
  args = p.parse_args(argv)
  overrides = _overrides(args.set)
  sizes = {k: getattr(args, k) for k in ("image_size", "n_images", "tokens", "probes", "n_spots",
                                         "folds")}
  if args.smoke:
    overrides = {**SMOKE["overrides"], **overrides}
    sizes = {k: SMOKE[k] for k in sizes}
  a_inits = [s.strip() for s in args.a_inits.split(",") if s.strip()]
  bad = sorted(set(a_inits) - set(mamba_vision.A_INITS))
  if bad or not a_inits:
    raise SystemExit(f"--a_inits: expected some of {mamba_vision.A_INITS}, got {args.a_inits!r}")
  try:
    models = backbones(args.checkpoint, args.model, overrides, a_inits, args.seed)
    results = analyse(models, batch_size=args.batch_size, seed=args.seed, images=args.images,
                      log=lambda m: print(m, file=sys.stderr), **sizes)
  except ValueError as e:
    raise SystemExit(f"error: {e}") from e
  write(results, args.out)
  print(table(results))
  return results


if __name__ == "__main__":
  main()
