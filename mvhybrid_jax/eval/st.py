"""The gene-expression task of eval.py: embed every spot with each backbone, cross-validate HEST's
probe under each protocol, and report (spec section 4)."""

from __future__ import annotations

import dataclasses
import logging
import os
import re

import numpy as np

from mvhybrid_jax.data import augment, datasets
from mvhybrid_jax.data import spots as spots_lib
from mvhybrid_jax.eval import backbones, features, gene_expression, probes, report

log = logging.getLogger(__name__)


NEEDS = {"loso": "study_col", "patient": "patient_col"}  # the CSV column each protocol groups by


def load_spots(data, protocols=()) -> tuple[spots_lib.Spots, list[dict]]:
  """(spots, skipped samples). config.data: a HEST-1k folder (dir + metadata_csv; samples chosen
  by ids and where) or, when dir is empty, the synthetic slides (synthetic_config)."""
  if not data.dir:
    return spots_lib.synthetic(data.synthetic_config), []
  if not os.path.isdir(data.dir):
    raise ValueError(f"config.data.dir: {data.dir} is not a folder; set it to a HEST-1k folder "
                     "(patches/, st/ or adata/) or leave it empty for the synthetic data")
  if not data.metadata_csv:
    raise ValueError("config.data.metadata_csv: needed with config.data.dir (HEST's metadata "
                     "CSV, e.g. HEST_v1_1_0.csv, with a column config.data.id_col)")
  required = tuple(data[NEEDS[p]] for p in protocols if p in NEEDS)
  try:
    return spots_lib.hest_spots(
        data.dir, data.metadata_csv, k=data.k, criterion=data.criterion,
        genes_json=data.genes_json or None, id_col=data.id_col, study_col=data.study_col,
        patient_col=data.patient_col, ids=data.ids, where=data.where,
        skip_missing=data.skip_missing, mpp=data.mpp, required=required)
  except ValueError as e:  # "where: ..." -> "config.data.where: ...", a file's error as it is
    key = str(e).split(":")[0]
    raise ValueError(f"config.data{'.' if key in data else ': '}{e}") from None


def spot_size(spots) -> int:
  """The spots' common image side; a saved probe applies to tiles of one size."""
  if hasattr(spots.images, "side"):  # HEST's patches, resized to one side as they are read
    return spots.images.side
  sizes = {np.asarray(augment.decode(spots.images[i])).shape[:2] for i in range(len(spots))}
  if len(sizes) != 1:
    raise ValueError(f"spots: images of several sizes {sorted(sizes)}; a saved probe needs one")
  (tile, _), = sizes
  return int(tile)


def save_probe(config, workdir, spots, tile, feats, probe, spec, label, model, settings) -> str:
  """The probe refitted on every spot, saved for predict.py with what it expects:
  WORKDIR/probes/<label>.npz."""
  y = np.log1p(spots.counts.astype(np.float64))
  fitted = dataclasses.replace(probe).fit(feats, y)
  extra = {}
  if not config.data.dir:  # what predict.py needs to render a slide like these spots
    cfg = {c.name: c for c in datasets.CONFIGS}[config.data.synthetic_config]
    extra["synthetic"] = dict(n_studies=cfg.n_studies, n_genes=cfg.n_genes, seed=cfg.seed,
                              patch_size=cfg.patch_size)
  meta = probes.probe_meta(
      label=label, checkpoint=os.path.abspath(spec) if spec != "random" else spec,
      settings=settings, seed=config.seed, model=model, embedding=config.embedding,
      mpp=config.data.mpp, tile=tile,
      data=(f"synthetic:{config.data.synthetic_config}" if not config.data.dir
            else os.path.abspath(config.data.dir)), n_spots=len(spots), **extra)
  path = os.path.join(workdir, "probes", re.sub(r"[^A-Za-z0-9_.-]+", "_", label) + ".npz")
  probes.save_probe(path, probes.export_probe(fitted, spots.genes, meta,
                                              intercept=y.mean(axis=0)))
  log.info("%s: probe saved to %s", label, path)
  return path


def run(config, workdir: str) -> dict:
  """{label: {"checkpoint", "backbone", "protocols": {protocol: evaluate(...), "drop": ...},
  "probe": path}}, also written to workdir (results.json, results.md, folds.csv, genes.csv,
  pcc.png) with each backbone's probe fitted on all spots (probes/, for predict.py)."""
  unknown = sorted(set(config.protocols) - set(gene_expression.PROTOCOLS))
  if unknown:
    raise ValueError(f"config.protocols: unknown {unknown}; expected some of "
                     f"{gene_expression.PROTOCOLS}")
  spots, skipped = load_spots(config.data, config.protocols)
  log.info("%d spots, %d genes, %d studies, %d patients", len(spots), len(spots.genes),
           len(set(spots.study)), len(set(spots.patient)))
  probe = probes.Probe(pca=config.probe.pca or None, alpha=config.probe.alpha,
                       seed=config.seed)
  tile = spot_size(spots) if config.save_probes else None  # once, not per backbone
  results = {}
  for spec, label, model, settings in backbones.compared(config):
    if label in results:
      raise ValueError(f"config.checkpoint: {label!r} is given twice")
    feats = features.extract(model, spots.images, embedding=config.embedding,
                             batch_size=config.batch_size,
                             cache_dir=os.path.join(workdir, "features"), desc=label)
    protocols = {}
    for protocol in config.protocols:
      protocols[protocol] = gene_expression.evaluate(
          feats, spots.counts, protocol, slide=spots.slide, study=spots.study,
          patient=spots.patient,
          k=config.folds, probe=probe, seed=config.seed)
      log.info("%s %s: PCC %.3f", label, protocol, protocols[protocol]["mean"]["pcc"])
    if "random" in protocols and "loso" in protocols:
      protocols["drop"] = gene_expression.drop(protocols["random"]["mean"],
                                               protocols["loso"]["mean"])
    results[label] = dict(checkpoint=spec, backbone=settings["name"], protocols=protocols)
    if config.save_probes:
      results[label]["probe"] = save_probe(config, workdir, spots, tile, feats, probe, spec,
                                           label, model, settings)
  report.write_st(results, spots.genes, workdir, skipped=skipped)
  return results
