"""Gene-expression maps of a whole slide from a backbone and the probe eval.py fitted on it.

The slide is tiled at the probe's microns per pixel and tile size, tissue only (data.wsi), every
tile is embedded as the probe was fitted (same backbone weights, embedding and normalisation; a
mismatch is an error), and the probe predicts log1p expression of its genes per tile. The workdir
gets predictions.h5ad (obs: tile coordinates, var: genes), one heatmap per requested gene over
the slide's thumbnail, and summary.md linking them; all written under a temporary folder and moved
into place only once complete.
"""

from __future__ import annotations

import json
import logging
import os
import shutil

import anndata
import numpy as np
import pandas as pd
from matplotlib import cm
from matplotlib.figure import Figure
from PIL import Image

from mvhybrid_jax.data import synthetic, wsi
from mvhybrid_jax.eval import backbones, features, gene_expression, probes

log = logging.getLogger(__name__)

SYNTHETIC_GRID = (12, 12)  # spots of the embedded synthetic slide
SYNTHETIC_SEED = 1000      # its rendering seed: a slide none of the benchmark's spots come from
THUMBNAIL = 1536           # longest side of the slide image under the maps, pixels


class Tiles:
  """The grid's tiles as a lazy sequence, read as features.extract asks for them."""

  def __init__(self, slide, grid: wsi.Grid, tile: int):
    self.slide, self.grid, self.tile = slide, grid, tile

  def __len__(self):
    return len(self.grid.corners)

  def __getitem__(self, i):
    return wsi.read_tile(self.slide, self.grid, self.grid.corners[i], self.tile)


def synthetic_slide(probe, workdir_tmp: str, seed: int = 0):
  """A slide rendered like the probe's synthetic training spots (same studies, gene model and
  spot size), written as a PNG: (path, truth {corner: log1p counts})."""
  cfg = probe.meta.get("synthetic")
  if not cfg:
    raise ValueError(f"config.slide: empty means the embedded synthetic slide, but the probe was "
                     f"fitted on {probe.meta.get('data')!r}, whose genes it does not share; give "
                     "a slide")
  studies = synthetic.make_studies(cfg["n_studies"], cfg["seed"])
  genes = synthetic.make_gene_model(cfg["n_genes"], seed=cfg["seed"])
  rng = np.random.default_rng(SYNTHETIC_SEED + seed)
  slide = synthetic.make_slide(rng, studies[0], genes, "synthetic", "synthetic", SYNTHETIC_GRID,
                               cfg["patch_size"])
  image, kept = synthetic.slide_image(slide, margin=1, seed=seed)
  path = os.path.join(workdir_tmp, "synthetic_slide.png")
  Image.fromarray(image).save(path)
  size = cfg["patch_size"]
  truth = {(int((c + 1) * size), int((r + 1) * size)): np.log1p(slide.counts[k].astype(np.float64))
           for k, (r, c) in zip(kept, slide.coords[kept])}
  return path, truth, list(genes.names)


def _genes(requested: list[str], probe, predictions, limit: int) -> list[str]:
  """The requested genes, or the `limit` whose predictions vary most over the slide."""
  if requested:
    return requested
  order = np.argsort(-predictions.var(axis=0), kind="stable")[:limit]
  return [probe.genes[i] for i in order]


def _field(grid: wsi.Grid, values) -> np.ndarray:
  """Tile values on the tile grid (rows, cols), NaN off tissue."""
  field = np.full(grid.tissue.shape, np.nan)
  for (r, c), v in zip(grid.cells, values):
    field[r, c] = v
  return field


def _heatmap(thumb: np.ndarray, size0, grid: wsi.Grid, values, gene: str, path: str,
             truth=None) -> None:
  """The values over the slide thumbnail (level-0 extent size0 = (width, height)); with the
  truth (synthetic slide) beside it on the same colour scale."""
  rows, cols = grid.tissue.shape
  fields = [("predicted", _field(grid, values))]
  if truth is not None:
    fields.append(("true", _field(grid, truth)))
  lo = min(np.nanmin(f) for _, f in fields)
  hi = max(np.nanmax(f) for _, f in fields)
  width, height = size0
  fig = Figure(figsize=(6.5 * len(fields), 6.5 * height / width + 0.8))
  axes = np.atleast_1d(fig.subplots(1, len(fields)))
  for ax, (name, field) in zip(axes, fields):
    ax.imshow(thumb, extent=(0, width, height, 0))
    im = ax.imshow(field, extent=(0, cols * grid.span, rows * grid.span, 0), cmap=cm.magma,
                   alpha=0.6, vmin=lo, vmax=hi, interpolation="nearest")
    ax.set(title=f"{gene}: {name}" if truth is not None else gene, xticks=[], yticks=[],
           xlim=(0, width), ylim=(height, 0))
  fig.colorbar(im, ax=list(axes), fraction=0.046, pad=0.04, label="log1p expression")
  fig.savefig(path, format="png", dpi=100, bbox_inches="tight")


def _adata(grid: wsi.Grid, predictions, probe, slide_path, tile) -> anndata.AnnData:
  corners = np.asarray(grid.corners, np.int64)
  cells = np.asarray(grid.cells, np.int64)
  obs = pd.DataFrame(dict(x=corners[:, 0], y=corners[:, 1], row=cells[:, 0], col=cells[:, 1],
                          tissue=[float(grid.tissue[r, c]) for r, c in grid.cells]),
                     index=[f"tile_{i}" for i in range(len(corners))])
  adata = anndata.AnnData(X=predictions.astype(np.float32), obs=obs,
                          var=pd.DataFrame(index=list(probe.genes)))
  adata.obsm["spatial"] = (corners + grid.span / 2).astype(np.float64)  # tile centres, level 0
  adata.uns["slide"] = str(slide_path)
  adata.uns["slide_mpp"] = float(grid.slide_mpp)
  adata.uns["tile"] = int(tile)
  adata.uns["tile_span_level0"] = float(grid.span)
  adata.uns["probe"] = json.dumps(probe.meta)
  return adata


def _summary(meta: dict, genes, predictions, probe, truth_pcc: dict | None) -> str:
  lines = ["# Predicted gene expression", "",
           f"- slide: `{meta['slide']}` ({meta['tiles']} tissue tiles of {meta['tile']} px at "
           f"{meta['mpp']} um/px)",
           f"- backbone: {meta['backbone']} (`{meta['checkpoint']}`), embedding {meta['embedding']}",
           f"- probe: `{meta['probe']}` ({len(probe.genes)} genes, log1p expression)",
           "- all genes per tile: `predictions.h5ad` (obs: tile corners x, y at level 0, grid row "
           "and col; obsm['spatial']: tile centres)", ""]
  if truth_pcc is not None:
    valid = [v for v in truth_pcc.values() if np.isfinite(v)]
    lines += [f"Synthetic slide: PCC of predicted and true log1p expression over the tiles on "
              f"spots, mean over the probe's {len(valid)} varying genes: {np.mean(valid):.3f}", ""]
  lines += ["| gene | mean | min | max |" + (" PCC with truth |" if truth_pcc else "") + " map |",
            "|---|---|---|---|" + ("---|" if truth_pcc else "") + "---|"]
  for g in genes:
    v = predictions[:, probe.genes.index(g)]
    pcc = f" {truth_pcc[g]:.3f} |" if truth_pcc else ""
    lines.append(f"| {g} | {v.mean():.3f} | {v.min():.3f} | {v.max():.3f} |{pcc} "
                 f"![{g}](maps/{g}.png) |")
  return "\n".join(lines) + "\n"


def run(config, workdir: str) -> dict:
  """Predicts, writes the outputs and returns {"predictions.h5ad": path, "maps": [...],
  "summary": path, "tiles": n, "truth_pcc": {gene: r} (synthetic slide only)}."""
  if not config.probe:
    raise ValueError("config.probe: required; eval.py's gene-expression task writes "
                     "WORKDIR/probes/<checkpoint>.npz")
  probe = probes.load_probe(config.probe)
  requested = [g.strip() for g in str(config.genes).split(",") if g.strip()]
  unknown = [g for g in requested if g not in probe.genes]
  if unknown:
    raise ValueError(f"config.genes: {unknown} are not among the probe's {len(probe.genes)} genes "
                     f"(e.g. {probe.genes[:5]})")
  created = not os.path.exists(workdir)
  tmp = os.path.join(workdir, ".predict.incomplete")
  shutil.rmtree(tmp, ignore_errors=True)
  os.makedirs(os.path.join(tmp, "maps"))
  try:
    result = _run(config, probe, requested, tmp, workdir)
    for name in os.listdir(tmp):  # complete: move into place
      dest = os.path.join(workdir, name)
      if os.path.isdir(dest):
        shutil.rmtree(dest)
      os.replace(os.path.join(tmp, name), dest)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
    if created and not os.listdir(workdir):  # failed before anything was written
      os.rmdir(workdir)
  result["maps"] = [os.path.join(workdir, "maps", f"{g}.png") for g in result["genes"]]
  result["summary"] = os.path.join(workdir, "summary.md")
  result["predictions.h5ad"] = os.path.join(workdir, "predictions.h5ad")
  return result


def _run(config, probe, requested, tmp, workdir) -> dict:
  truth = None
  if config.slide:
    slide_path, slide_mpp, shown_path = config.slide, config.slide_mpp, config.slide
  else:
    slide_path, truth, truth_genes = synthetic_slide(probe, tmp, config.seed)
    slide_mpp, shown_path = synthetic.MPP, os.path.join(workdir, "synthetic_slide.png")
  slide = wsi.open_slide(slide_path)
  if slide_mpp is None and not slide.properties.get("tiffslide.mpp-x"):
    raise ValueError(f"config.slide_mpp: {slide_path} does not record its microns per pixel; "
                     "set it (e.g. 0.25 for 40x, 0.5 for 20x)")
  spec = config.checkpoint or probe.meta["checkpoint"]
  label, model, settings = backbones.load(spec, probe.meta["backbone"], probe.meta.get("seed", 0))
  probes.check_backbone(probe, model, settings, spec)
  tile, mpp = int(probe.meta["tile"]), float(probe.meta["mpp"])
  grid = wsi.tissue_grid(slide, slide_path, target_mpp=mpp, tile=tile,
                         min_tissue=config.min_tissue, mpp=slide_mpp)
  log.info("%s: %d tissue tiles of %d px at %s um/px", slide_path, len(grid.corners), tile, mpp)
  feats = features.extract(model, Tiles(slide, grid, tile), embedding=probe.meta["embedding"],
                           batch_size=config.batch_size, desc="tiles")
  predictions = probe.predict(feats)
  genes = _genes(requested, probe, predictions, config.max_genes)
  truth_pcc = None
  if truth is not None:
    on_spot = [i for i, c in enumerate(grid.corners) if tuple(c) in truth]
    idx = [truth_genes.index(g) for g in probe.genes]
    y = np.stack([truth[tuple(grid.corners[i])][idx] for i in on_spot])
    r = gene_expression.per_gene_pcc(y, predictions[on_spot])
    truth_pcc = dict(zip(probe.genes, r.tolist()))
  _adata(grid, predictions, probe, shown_path, tile).write_h5ad(
      os.path.join(tmp, "predictions.h5ad"))
  width, height = slide.dimensions
  scale = min(1.0, THUMBNAIL / max(width, height))
  thumb = np.asarray(slide.get_thumbnail((max(1, int(width * scale)), max(1, int(height * scale))))
                     .convert("RGB"))
  for g in genes:
    j = probe.genes.index(g)
    true = None
    if truth is not None:  # tiles off the spots (none on the synthetic slide) stay NaN
      true = [truth[tuple(c)][truth_genes.index(g)] if tuple(c) in truth else np.nan
              for c in grid.corners]
    _heatmap(thumb, (width, height), grid, predictions[:, j], g,
             os.path.join(tmp, "maps", f"{g}.png"), true)
  meta = dict(slide=shown_path, tiles=len(grid.corners), tile=tile, mpp=mpp,
              backbone=settings["name"], checkpoint=spec, embedding=probe.meta["embedding"],
              probe=config.probe)
  with open(os.path.join(tmp, "summary.md"), "w") as f:
    f.write(_summary(meta, genes, predictions, probe, truth_pcc))
  return {"tiles": len(grid.corners), "genes": genes, "truth_pcc": truth_pcc, "label": label}
