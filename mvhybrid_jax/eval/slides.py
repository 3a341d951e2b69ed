"""The survival task of eval.py: each slide's patches embedded; Cox and GMM risk models on the
slides' mean embeddings and attention-MIL on the patches, cross-validated over slides, scored by
the concordance index.

Slides: the synthetic slides (their spots are the patches; time and event per slide), or a
folder of one ArrayRecord of tiles per slide (<slide_id>.array_record, from data.wsi.tile_slide or
data.folders.pack) with a clinical CSV (slide id, time, event)."""

from __future__ import annotations

import glob
import logging
import os

import numpy as np

from mvhybrid_jax.data import records
from mvhybrid_jax.data import spots as spots_lib
from mvhybrid_jax.data import clinical
from mvhybrid_jax.eval import backbones, features, report, survival

log = logging.getLogger(__name__)


class _Tiles:
  """A slide's tiles from its ArrayRecord: the encoded images."""

  def __init__(self, path):
    self.records, _ = records.read(path, "data.wsi.tile_slide or data.folders.pack")

  def __len__(self):
    return len(self.records)

  def __getitem__(self, i):
    return self.records[i]


def load_slides(data):
  """([slide ids], {id: images}, SurvivalTable)."""
  if not data.slides_dir:
    s = spots_lib.synthetic(data.synthetic_config)
    ids = sorted(set(s.slide))
    images = {i: [s.images[k] for k in np.flatnonzero(s.slide == i)] for i in ids}
    src = {i: int(np.flatnonzero(s.slide == i)[0]) for i in ids}
    table = clinical.SurvivalTable(ids, np.array([s.time[src[i]] for i in ids]),
                                        np.array([s.event[src[i]] for i in ids]))
    return ids, images, table
  if not os.path.isdir(data.slides_dir):
    raise ValueError(f"config.data.slides_dir: {data.slides_dir} is not a folder")
  if not data.clinical_csv:
    raise ValueError("config.data.clinical_csv: needed with config.data.slides_dir (columns "
                     "slide id, time, event)")
  paths = sorted(glob.glob(os.path.join(data.slides_dir, "*.array_record")))
  if not paths:
    raise ValueError(f"config.data.slides_dir: no *.array_record in {data.slides_dir}")
  ids = [os.path.basename(p)[:-len(".array_record")] for p in paths]
  table = clinical.load_csv(data.clinical_csv, id_col=data.id_col,
                                 time_col=data.time_col, event_col=data.event_col).select(ids)
  return ids, {i: _Tiles(p) for i, p in zip(ids, paths)}, table


def run(config, workdir: str) -> dict:
  ids, images, table = load_slides(config.data)
  log.info("%d slides, %d events", len(ids), int(table.event.sum()))
  results = {}
  for spec, label, model, settings in backbones.compared(config):
    bags = [features.extract(model, images[i], embedding=config.embedding,
                             batch_size=config.batch_size,
                             cache_dir=os.path.join(workdir, "features"), desc=f"{label} {i}")
            for i in ids]
    slide_feats = np.stack([b.mean(0) for b in bags])
    metrics = {m: survival.evaluate(slide_feats, table.time, table.event, method=m,
                                    folds=config.folds, pca=config.pca, bags=bags,
                                    seed=config.seed)
               for m in config.methods}
    results[label] = dict(checkpoint=spec, backbone=settings["name"], metrics={
        m: {"c_index": v["c_index"], "fold_mean": v["mean"], "fold_std": v["std"]}
        for m, v in metrics.items()})
  report.write_table(results, workdir, "Survival (concordance index)")
  return results
