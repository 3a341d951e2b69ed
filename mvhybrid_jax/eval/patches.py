"""The labelled-patch tasks of eval.py: classification (linear probe and kNN) and retrieval, on
a train / test pair of patch sets: the synthetic nine-class patches, or two ArrayRecords packed by
data.folders.pack (NCT-CRC-HE-100K / CRC-VAL-HE-7K, MHIST, UniToPatho, ...)."""

from __future__ import annotations

import logging
import os

import numpy as np

from mvhybrid_jax.data import datasets, folders, synthetic
from mvhybrid_jax.eval import backbones, classification, features, report

log = logging.getLogger(__name__)


def load_splits(data):
  """{"train"|"test": (images, labels)}, class names."""
  if bool(data.train_path) != bool(data.test_path):
    raise ValueError("config.data.train_path and config.data.test_path: set both (packed "
                     "ArrayRecords from data.folders.pack), or neither for the synthetic patches")
  if not data.train_path:
    src = datasets.load("synthetic_crc_classes", data.synthetic_config)
    splits = {s: (folders.Images(src[s]), np.array([src[s][i]["label"] for i in range(len(src[s]))]))
              for s in ("train", "test")}
    return splits, list(synthetic.CLASSES)
  sources = {}
  for split, path in (("train", data.train_path), ("test", data.test_path)):
    if not os.path.exists(path):
      raise ValueError(f"config.data.{split}_path: {path} does not exist")
    sources[split] = folders.FolderSource(path)
  if sources["train"].classes != sources["test"].classes:
    raise ValueError(f"{data.test_path}: classes {sources['test'].classes} differ from "
                     f"{data.train_path}'s {sources['train'].classes}")
  return ({s: (folders.Images(src), np.array(src.labels)) for s, src in sources.items()},
          list(sources["train"].classes))


def run(config, workdir: str) -> dict:
  """{label: {"checkpoint", "backbone", "metrics": {method: {metric: value}}}}, also written to
  workdir (results.json, results.md)."""
  splits, classes = load_splits(config.data)
  log.info("%d train, %d test patches, %d classes", len(splits["train"][1]),
           len(splits["test"][1]), len(classes))
  results = {}
  for spec, label, model, settings in backbones.compared(config):
    feats = {s: features.extract(model, images, embedding=config.embedding,
                                 batch_size=config.batch_size,
                                 cache_dir=os.path.join(workdir, "features"),
                                 desc=f"{label} {s}")
             for s, (images, _) in splits.items()}
    args = (feats["train"], splits["train"][1], feats["test"], splits["test"][1])
    if config.task == "cls":
      metrics = {"linear": classification.linear_probe(*args),
                 "knn": classification.knn(*args, k=config.knn_k)}
    else:
      metrics = {"retrieval": classification.retrieval(*args)}
    results[label] = dict(checkpoint=spec, backbone=settings["name"], metrics=metrics)
  title = "Patch classification" if config.task == "cls" else "Patch retrieval"
  report.write_table(results, workdir, title)
  return results
