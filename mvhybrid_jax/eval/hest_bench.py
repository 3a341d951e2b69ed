"""HEST-Benchmark's own tasks (eval.py's hest_bench task): each task's splits and gene list as
HEST ships them, HEST's probe per split, and the leaderboard-shaped table.

Per task and backbone, every sample is embedded once (cached in WORKDIR/features) and its targets
are log1p counts of the task's genes at its patches' barcodes. Per split the probe (standardise,
PCA 256, ridge lsqr, alpha = 100 / (256 * genes), no intercept) is fitted on the training
samples' spots and scored on the test samples' spots: Pearson r per gene, the split's PCC their
mean. A task's score is the mean over its splits +- their std (ddof 0), the leaderboard's last
column the mean over tasks (HEST's benchmark.py, trainer.py).
"""

from __future__ import annotations

import dataclasses
import logging
import os

import numpy as np

from mvhybrid_jax.data import hest
from mvhybrid_jax.eval import backbones, features, gene_expression, probes, report

log = logging.getLogger(__name__)


def task_samples(task: hest.BenchTask) -> dict[str, hest.Sample]:
  return {r.sample_id: hest.load_sample(task.root, r.sample_id, patches=r.patches_path,
                                        expression=r.expr_path)
          for r in task.samples().itertuples()}


def evaluate_task(task, samples, feats, probe) -> dict:
  """{"splits": [metrics + "test", "per_gene_pcc"], "mean", "std", "genes"} of one task, from
  each sample's embeddings (feats: {sample_id: (spots, dim)})."""
  y = {sid: np.log1p(hest.expression(s, task.genes).astype(np.float64))
       for sid, s in samples.items()}
  rows = []
  for train, test in task.splits:
    stack = lambda d, df: np.concatenate([d[sid] for sid in df["sample_id"]])
    fitted = dataclasses.replace(probe).fit(stack(feats, train), stack(y, train))
    m, r = gene_expression.metrics(stack(y, test), fitted.predict(stack(feats, test)))
    rows.append({**m, "test": list(test["sample_id"]), "per_gene_pcc": r.tolist()})
  table = {k: np.array([row[k] for row in rows]) for k in gene_expression.METRICS}
  return dict(splits=rows, mean={k: float(np.mean(v)) for k, v in table.items()},
              std={k: float(np.std(v)) for k, v in table.items()}, genes=task.genes)


def run(config, workdir: str) -> dict:
  """{label: {"checkpoint", "backbone", "tasks": {task: evaluate_task(...)}, "mean": PCC over
  tasks}}, also written to workdir (results.json, results.md, splits.csv, genes.csv, bench.png)."""
  if not config.bench_dir:
    raise ValueError("config.bench_dir: set it to HEST-Benchmark's data folder (bench_data from "
                     "MahmoodLab/hest-bench: a folder per task) or to one task's folder")
  try:
    tasks = hest.bench_tasks(config.bench_dir, config.tasks or None)
  except ValueError as e:  # "tasks: ..." names config.tasks, anything else the folder
    key = "tasks" if str(e).startswith("tasks:") else "bench_dir"
    raise ValueError(f"config.{key}: {str(e).removeprefix('tasks: ')}") from None
  log.info("%d tasks: %s", len(tasks), ", ".join(
      f"{t.name} ({len(t.samples())} samples, {len(t.splits)} splits)" for t in tasks))
  probe = probes.Probe(pca=config.probe.pca or None, alpha=config.probe.alpha,
                       seed=config.seed)
  samples = {}
  results = {}
  for spec, label, model, settings in backbones.compared(config):
    if label in results:
      raise ValueError(f"config.checkpoint: {label!r} is given twice")
    per_task = {}
    for task in tasks:
      if task.name not in samples:
        samples[task.name] = task_samples(task)
      feats = {sid: features.extract(model, hest.Patches([s], config.mpp),
                                     embedding=config.embedding, batch_size=config.batch_size,
                                     cache_dir=os.path.join(workdir, "features"),
                                     desc=f"{label} {task.name} {sid}")
               for sid, s in samples[task.name].items()}
      per_task[task.name] = evaluate_task(task, samples[task.name], feats, probe)
      log.info("%s %s: PCC %.3f +- %.3f", label, task.name, per_task[task.name]["mean"]["pcc"],
               per_task[task.name]["std"]["pcc"])
    results[label] = dict(checkpoint=spec, backbone=settings["name"], tasks=per_task,
                          mean=float(np.mean([t["mean"]["pcc"] for t in per_task.values()])))
  report.write_bench(results, workdir)
  return results
