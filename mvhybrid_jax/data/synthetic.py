"""Procedural H&E-like data: patches of the nine NCT-CRC-HE tissue classes, studies with their
own stains and scanners, slides of spots with gene expression, and survival.

Nothing here downloads anything; everything is deterministic by seed. Images are rendered as
haematoxylin and eosin densities and turned into RGB by Beer-Lambert with each study's stain
vectors, then blurred, noised and JPEG-compressed as that study's scanner would: so a study is a
real domain shift for leave-one-study-out. Expression depends on tissue composition (what colour
histograms can see), on smooth, low-frequency spatial fields, and, for a few genes, on fine nuclear
texture (high-frequency), so the spectral-bias hypothesis can be probed.
"""

from __future__ import annotations

import dataclasses
import io
import os

import numpy as np
from PIL import Image, ImageFilter

CLASSES = ("ADI", "BACK", "DEB", "LYM", "MUC", "MUS", "NORM", "STR", "TUM")
# Ruifrok & Johnston's optical-density vectors of haematoxylin and eosin.
H_OD = np.array([0.65, 0.70, 0.29])
E_OD = np.array([0.07, 0.99, 0.11])


@dataclasses.dataclass(frozen=True)
class Study:
  """A source of slides: stain vectors and scanner (blur, noise, JPEG quality)."""
  name: str
  h_od: tuple[float, float, float]
  e_od: tuple[float, float, float]
  stain_strength: float
  blur: float
  noise: float
  jpeg_quality: int


def make_studies(n: int = 4, seed: int = 0) -> list[Study]:
  """n studies with perturbed stain vectors and scanner settings (deterministic by seed)."""
  rng = np.random.default_rng(seed)
  studies = []
  for i in range(n):
    h = H_OD + rng.normal(0, 0.08, 3)
    e = E_OD + rng.normal(0, 0.08, 3)
    studies.append(Study(
        name=f"study{i}", h_od=tuple(np.abs(h) / np.linalg.norm(h)),
        e_od=tuple(np.abs(e) / np.linalg.norm(e)), stain_strength=float(rng.uniform(0.8, 1.25)),
        blur=float(rng.uniform(0.0, 1.2)), noise=float(rng.uniform(1.0, 5.0)),
        jpeg_quality=int(rng.integers(60, 96))))
  return studies


def _blobs(canvas, rng, n, radius, elongation=1.0, strength=1.0, angle=None):
  """Adds n Gaussian nuclei (ellipses of the given radius and elongation) to canvas, in place."""
  size = canvas.shape[0]
  r = int(np.ceil(3 * radius * max(elongation, 1.0)))
  yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
  for _ in range(n):
    cy, cx = rng.integers(0, size, 2)
    th = rng.uniform(0, np.pi) if angle is None else angle + rng.normal(0, 0.15)
    u = (xx * np.cos(th) + yy * np.sin(th)) / (radius * elongation)
    v = (-xx * np.sin(th) + yy * np.cos(th)) / (radius * rng.uniform(0.8, 1.2))
    blob = strength * rng.uniform(0.7, 1.3) * np.exp(-0.5 * (u * u + v * v) ** 2)
    y0, y1, x0, x1 = cy - r, cy + r + 1, cx - r, cx + r + 1
    sy0, sx0 = max(0, -y0), max(0, -x0)
    sy1 = blob.shape[0] - max(0, y1 - size)
    sx1 = blob.shape[1] - max(0, x1 - size)
    canvas[max(0, y0):min(size, y1), max(0, x0):min(size, x1)] += blob[sy0:sy1, sx0:sx1]


def _smooth_noise(rng, size, cells):
  """Low-frequency noise in [0, 1]: a cells x cells random grid upsampled bicubically."""
  small = Image.fromarray((rng.uniform(0, 1, (cells, cells)) * 255).astype(np.uint8))
  return np.asarray(small.resize((size, size), Image.BICUBIC), np.float32) / 255.0


def _streaks(rng, size, angle, period):
  """Fibrous texture: oriented sinusoidal streaks with a wobble (stroma, muscle)."""
  yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
  wobble = 6.0 * _smooth_noise(rng, size, 4)
  phase = (xx * np.cos(angle) + yy * np.sin(angle)) / period * 2 * np.pi
  return 0.5 + 0.5 * np.sin(phase + wobble)


def render_densities(rng, composition, size):
  """Haematoxylin and eosin densities (size, size) for a mix of the nine classes."""
  c = dict(zip(CLASSES, np.asarray(composition, np.float64)))
  area = (size / 224.0) ** 2
  h = np.zeros((size, size), np.float32)
  angle = rng.uniform(0, np.pi)
  e = (0.15 + 0.9 * c["STR"] * _streaks(rng, size, angle, 9.0)
       + 1.2 * c["MUS"] * (0.6 + 0.4 * _streaks(rng, size, angle, 5.0))
       + 0.6 * (c["NORM"] + c["TUM"]) + 0.4 * c["DEB"] + 0.25 * c["LYM"]
       + 0.2 * c["MUC"] * _smooth_noise(rng, size, 6)).astype(np.float32)
  h += 0.25 * c["MUC"] * _smooth_noise(rng, size, 5)  # mucin: pale blue-grey
  n = lambda w, k: rng.poisson(k * w * area)
  _blobs(h, rng, n(c["LYM"], 420), 2.6, strength=1.6)                   # lymphocytes
  _blobs(h, rng, n(c["TUM"], 160), 6.0, elongation=1.4, strength=1.2)    # tumour nuclei
  _blobs(h, rng, n(c["NORM"], 90), 4.0, elongation=1.6, strength=1.0)    # epithelium
  _blobs(h, rng, n(c["STR"], 40), 3.0, elongation=3.0, strength=0.9, angle=angle)
  _blobs(h, rng, n(c["MUS"], 35), 2.5, elongation=4.0, strength=0.9, angle=angle)
  _blobs(h, rng, n(c["DEB"], 200), 1.5, strength=1.1)                   # karyorrhexis
  _blobs(e, rng, n(c["DEB"], 60), 3.0, strength=0.5)
  # Glands (normal mucosa, tumour): white lumina ringed by nuclei.
  yy, xx = np.mgrid[0:size, 0:size]
  for _ in range(n(c["NORM"] + 0.5 * c["TUM"], 3)):
    cy, cx, r = rng.integers(0, size), rng.integers(0, size), rng.uniform(10, 25) * size / 224
    d = np.hypot(yy - cy, xx - cx)
    lumen = np.clip((r - d) / 3.0, 0, 1)
    h *= 1 - lumen
    e *= 1 - 0.85 * lumen
    ring = np.exp(-0.5 * ((d - r - 3) / 2.5) ** 2)
    h += 0.8 * ring * (0.6 + 0.4 * np.sin(np.arctan2(yy - cy, xx - cx) * rng.integers(8, 16)))
  # Fat: large empty cells with thin membranes; background: nearly no stain.
  fat = c["ADI"]
  if fat > 0.05:
    pts = rng.uniform(0, size, (max(2, int(12 * area)), 2))
    d = np.sort(np.hypot(yy[..., None] - pts[:, 0], xx[..., None] - pts[:, 1]), axis=-1)
    membrane = np.exp(-0.5 * ((d[..., 1] - d[..., 0]) / 1.5) ** 2)
    h = h * (1 - fat) + fat * 0.1 * membrane
    e = e * (1 - fat) + fat * 0.5 * membrane
  empty = c["BACK"]
  h, e = h * (1 - empty), e * (1 - empty) + empty * 0.03
  return h, e


def render_patch(rng, composition, study: Study, size: int = 224) -> np.ndarray:
  """A (size, size, 3) uint8 patch of the given class composition, as scanned in `study`."""
  h, e = render_densities(rng, composition, size)
  od = study.stain_strength * (h[..., None] * np.asarray(study.h_od)
                               + e[..., None] * np.asarray(study.e_od))
  rgb = 255.0 * np.exp(-od)
  img = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
  if study.blur > 0.05:
    img = img.filter(ImageFilter.GaussianBlur(study.blur))
  arr = np.asarray(img, np.float32) + rng.normal(0, study.noise, (size, size, 3))
  buf = io.BytesIO()
  Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(buf, "JPEG",
                                                              quality=study.jpeg_quality)
  return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def class_patch(rng, label: int, study: Study, size: int = 224) -> np.ndarray:
  """A patch dominated by one class (NCT-CRC-HE-style labelled data)."""
  comp = rng.dirichlet(np.full(len(CLASSES), 0.3)) * 0.25
  comp[label] += 0.75
  return render_patch(rng, comp, study, size)


@dataclasses.dataclass(frozen=True)
class GeneModel:
  """How expression arises: log-mean = base + composition @ W + fields @ V + texture * t."""
  names: tuple[str, ...]
  base: np.ndarray        # (genes,)
  composition: np.ndarray  # (classes, genes)
  fields: np.ndarray      # (n_fields, genes): loadings on smooth spatial fields
  texture: np.ndarray     # (genes,): loading on fine nuclear texture (high-frequency genes)


def make_gene_model(n_genes: int = 50, n_fields: int = 3, n_texture: int = 5,
                    seed: int = 0) -> GeneModel:
  rng = np.random.default_rng(seed)
  comp = rng.normal(0, 2.0, (len(CLASSES), n_genes)) * (rng.uniform(0, 1, n_genes) < 0.8)
  texture = np.zeros(n_genes)
  texture[-n_texture:] = rng.uniform(0.6, 1.0, n_texture) * rng.choice([-1, 1], n_texture)
  comp[:, -n_texture:] *= 0.1  # texture genes barely see composition
  return GeneModel(names=tuple(f"GENE{i:03d}" for i in range(n_genes)),
                   base=rng.uniform(1.0, 3.0, n_genes), composition=comp,
                   fields=rng.normal(0, 0.6, (n_fields, n_genes)), texture=texture)


def nuclear_texture(patch: np.ndarray) -> float:
  """Fine-scale texture energy: mean |difference| between neighbouring pixels of the darkest
  channel minus its 5-px blur, i.e. what only high spatial frequencies carry."""
  g = patch.min(axis=-1).astype(np.float32)
  blurred = np.asarray(Image.fromarray(g.astype(np.uint8)).filter(ImageFilter.BoxBlur(2)),
                       np.float32)
  return float(np.abs(g - blurred).mean() / 20.0)


@dataclasses.dataclass
class Slide:
  id: str
  study: str
  patient: str
  patches: np.ndarray      # (spots, size, size, 3) uint8
  coords: np.ndarray       # (spots, 2) grid positions (row, col)
  composition: np.ndarray  # (spots, classes)
  counts: np.ndarray       # (spots, genes) int
  time: float              # survival time
  event: bool              # True: the event was observed; False: censored


# Scale of the smooth class logits behind a slide's spots: at 8 a spot's main class averages about
# half of it, as in a real section, where a 112 um patch shows mostly one or two tissues. Evenly
# mixed spots (a scale of 3) leave a 64 px patch too little of its composition for any features,
# colour histograms or backbones, to predict expression from.
SPOT_SHARPNESS = 8.0


def make_slide(rng, study: Study, genes: GeneModel, slide_id: str, patient: str,
               grid: tuple[int, int] = (8, 8), size: int = 224) -> Slide:
  """A slide of grid spots: smooth class fields -> composition -> patch and expression."""
  rows, cols = grid
  logits = np.stack([SPOT_SHARPNESS * _smooth_noise(rng, max(rows, cols), 3)[:rows, :cols]
                     + rng.normal(0, 0.8) for _ in CLASSES], -1)
  comp = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)  # (rows, cols, classes)
  comp = comp.reshape(rows * cols, -1)
  fields = np.stack([2 * _smooth_noise(rng, max(rows, cols), 2)[:rows, :cols] - 1
                     for _ in range(genes.fields.shape[0])], -1).reshape(rows * cols, -1)
  patches = np.stack([render_patch(rng, c, study, size) for c in comp])
  texture = np.array([nuclear_texture(p) for p in patches])
  texture = (texture - texture.mean()) / (texture.std() + 1e-6)  # standardised within the slide
  log_mu = (genes.base + comp @ genes.composition + fields @ genes.fields
            + texture[:, None] * genes.texture)
  counts = rng.poisson(np.exp(np.clip(log_mu + rng.normal(0, 0.2, log_mu.shape), -5, 6)))
  # Survival: hazard rises with tumour and falls with lymphocytes (slide means).
  risk = 2.0 * comp[:, CLASSES.index("TUM")].mean() - 2.0 * comp[:, CLASSES.index("LYM")].mean()
  t_event = rng.exponential(5.0 * np.exp(-risk))
  t_censor = rng.uniform(1.0, 10.0)
  coords = np.stack(np.divmod(np.arange(rows * cols), cols), -1)
  return Slide(id=slide_id, study=study.name, patient=patient, patches=patches, coords=coords,
               composition=comp, counts=counts, time=float(min(t_event, t_censor)),
               event=bool(t_event <= t_censor))


def make_cohort(n_studies: int = 4, slides_per_study: int = 2, grid=(8, 8), size: int = 224,
                n_genes: int = 50, seed: int = 0) -> tuple[list[Slide], GeneModel]:
  """Slides from n_studies studies (one patient per slide) sharing one gene model."""
  studies = make_studies(n_studies, seed)
  genes = make_gene_model(n_genes, seed=seed)
  rng = np.random.default_rng(seed + 1)
  slides = [make_slide(rng, s, genes, f"{s.name}_slide{j}", f"{s.name}_p{j}", grid, size)
            for s in studies for j in range(slides_per_study)]
  return slides, genes


# Synthetic spots and slides are rendered at a nominal 0.5 um/px, HEST's patch resolution.
MPP = 0.5


def slide_image(slide: Slide, margin: int = 1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """The slide as one whole-slide image: its spots stitched edge to edge, those inside the ellipse
  inscribed in the grid kept (a tissue section's outline) and the rest, plus `margin` spots all
  round, left as glass. Returns (image (H, W, 3) uint8, kept spot indices); spot k sits at
  x = (col + margin) * size, y = (row + margin) * size."""
  size = slide.patches.shape[1]
  rows, cols = slide.coords.max(0) + 1
  rng = np.random.default_rng(seed)
  shape = ((rows + 2 * margin) * size, (cols + 2 * margin) * size, 3)
  image = np.clip(rng.normal(243, 2, shape), 0, 255).astype(np.uint8)  # glass
  r, c = slide.coords[:, 0], slide.coords[:, 1]
  inside = ((r + 0.5 - rows / 2) / (rows / 2)) ** 2 + ((c + 0.5 - cols / 2) / (cols / 2)) ** 2 <= 1
  kept = np.nonzero(inside)[0]
  for k in kept:
    y, x = (r[k] + margin) * size, (c[k] + margin) * size
    image[y:y + size, x:x + size] = slide.patches[k]
  return image, kept


def preview(path: str, size: int = 128, n_studies: int = 4, seed: int = 0) -> None:
  """Saves a PNG grid: one row per tissue class, one column per study."""
  studies = make_studies(n_studies, seed)
  rng = np.random.default_rng(seed)
  rows = [np.concatenate([class_patch(rng, k, st, size) for st in studies], 1)
          for k in range(len(CLASSES))]
  tmp = path + ".tmp.png"
  Image.fromarray(np.concatenate(rows, 0)).save(tmp)
  os.replace(tmp, path)


if __name__ == "__main__":
  import argparse
  parser = argparse.ArgumentParser(description="Preview the synthetic tissue classes.")
  parser.add_argument("out", help="PNG path: rows are classes (ADI..TUM), columns studies")
  parser.add_argument("--size", type=int, default=128)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()
  preview(args.out, args.size, seed=args.seed)
