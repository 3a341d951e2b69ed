"""Spectral bias, views 2 and 3: what trained or untrained backbones do to frequencies.

2. Mixers. Each token mixer, linearised at an input: its token-mixing kernel ||dy_t / dx_s||^2
   and its gain to sinusoids along the token sequence (a low-pass mixer attenuates high
   frequencies), estimated with Rademacher probes through forward-mode derivatives; the
   eigenvalues a checkpoint's SSMs learned, against analysis.theory's bound.
3. Feature maps. The relative log amplitude of the 2-D Fourier transform of each layer's patch
   tokens, high vs low frequency by depth (Park & Kim, "How do vision transformers work?", 2022),
   on synthetic H&E patches or the user's tiles.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from PIL import Image, UnidentifiedImageError

from mvhybrid_jax.analysis import theory
from mvhybrid_jax.data import folders, synthetic
from mvhybrid_jax.eval import features as eval_features
from mvhybrid_jax.models import mamba_vision

# --- The eigenvalues a backbone's SSMs hold --------------------------------------------------

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
                     tv_bound={f"{top + b:g}": float(np.mean([theory.tv_bound(r, top + b)
                                                               for r in a]))
                               for b in lowers}))
  return rows


# --- Mixers: token-mixing kernel and frequency response ---------------------------------------

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
