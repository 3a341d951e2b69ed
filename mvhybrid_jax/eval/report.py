"""Evaluation reports: results.json, results.md (tables shaped like the paper's); for gene
expression also per-fold and per-gene CSVs and a random-vs-LOSO bar chart. Every file is written
under a temporary name and renamed."""

from __future__ import annotations

import csv
import json
import os

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mvhybrid_jax.eval import gene_expression  # noqa: E402


def _atomic(path: str, write) -> None:
  tmp = path + ".tmp"
  write(tmp)
  os.replace(tmp, path)


def _text(path: str, text: str) -> None:
  def write(tmp):
    with open(tmp, "w") as f:
      f.write(text)
  _atomic(path, write)


def _csv(path: str, header: list[str], rows: list[list]) -> None:
  def write(tmp):
    with open(tmp, "w", newline="") as f:
      w = csv.writer(f)
      w.writerow(header)
      w.writerows(rows)
  _atomic(path, write)


def st_markdown(results: dict, skipped: list[dict] = ()) -> str:
  lines = ["# Gene expression", "",
           "| checkpoint | backbone | protocol | PCC | PCC-10 | MAE | MSE |",
           "|---|---|---|---|---|---|---|"]
  for label, r in results.items():
    for protocol, p in r["protocols"].items():
      if protocol == "drop":
        cells = [f"{100 * p[m]:.1f}%" for m in gene_expression.METRICS]
      else:
        cells = [f"{p['mean'][m]:.3f} ± {p['std'][m]:.3f}" for m in gene_expression.METRICS]
      lines.append(f"| {label} | {r['backbone']} | {protocol} | " + " | ".join(cells) + " |")
  lines += ["", "Mean ± std over folds. Drop: (random - LOSO) / random for PCC, the relative "
            "increase for MAE and MSE."]
  if skipped:
    lines += ["", f"Skipped {len(skipped)} samples whose files are missing: "
              + ", ".join(f"{s['id']} ({' and '.join(s['missing'])})" for s in skipped) + "."]
  return "\n".join(lines) + "\n"


def write_st(results: dict, genes: list[str], workdir: str, skipped: list[dict] = ()) -> None:
  os.makedirs(workdir, exist_ok=True)
  _text(os.path.join(workdir, "results.json"), json.dumps(results, indent=1))
  if skipped:
    _text(os.path.join(workdir, "skipped_samples.json"), json.dumps(list(skipped), indent=1))
  _text(os.path.join(workdir, "results.md"), st_markdown(results, skipped))
  fold_rows, gene_rows = [], []
  for label, r in results.items():
    for protocol, p in r["protocols"].items():
      if protocol == "drop":
        continue
      for i, fold in enumerate(p["folds"]):
        fold_rows.append([label, protocol, i, ";".join(map(str, fold["test_groups"]))]
                         + [fold[m] for m in gene_expression.METRICS])
      gene_rows += [[label, protocol, g, v] for g, v in zip(genes, p["per_gene_pcc"])]
  _csv(os.path.join(workdir, "folds.csv"),
       ["checkpoint", "protocol", "fold", "test_groups", *gene_expression.METRICS], fold_rows)
  _csv(os.path.join(workdir, "genes.csv"), ["checkpoint", "protocol", "gene", "pcc"], gene_rows)
  _bar_chart(results, os.path.join(workdir, "pcc.png"))


def _bar_chart(results: dict, path: str) -> None:
  """PCC by protocol (bars) per checkpoint, with the fold std as error bars."""
  labels = list(results)
  protocols = [p for p in gene_expression.PROTOCOLS
               if any(p in r["protocols"] for r in results.values())]
  fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(labels), 3.6))
  width = 0.8 / max(len(protocols), 1)
  for j, protocol in enumerate(protocols):
    means = [results[l]["protocols"].get(protocol, {}).get("mean", {}).get("pcc", 0.0)
             for l in labels]
    stds = [results[l]["protocols"].get(protocol, {}).get("std", {}).get("pcc", 0.0)
            for l in labels]
    ax.bar([i + j * width for i in range(len(labels))], means, width, yerr=stds, capsize=3,
           label=protocol)
  ax.set_xticks([i + width * (len(protocols) - 1) / 2 for i in range(len(labels))])
  ax.set_xticklabels(labels, rotation=15)
  ax.set(ylabel="PCC (mean over genes)", title="gene expression: random split vs held-out study")
  ax.legend()
  fig.tight_layout()
  _atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
  plt.close(fig)


def bench_markdown(results: dict) -> str:
  """HEST-Benchmark's leaderboard: a row per checkpoint, PCC per task (mean +- std over its
  splits) and the mean over tasks."""
  tasks = list(next(iter(results.values()))["tasks"])
  lines = ["# HEST-Benchmark", "", "| checkpoint | backbone | " + " | ".join(tasks) + " | mean |",
           "|---|---|" + "---|" * (len(tasks) + 1)]
  for label, r in results.items():
    cells = [f"{t['mean']['pcc']:.3f} ± {t['std']['pcc']:.3f}" for t in r["tasks"].values()]
    lines.append(f"| {label} | {r['backbone']} | " + " | ".join(cells) + f" | {r['mean']:.3f} |")
  splits = ", ".join(f"{name} {len(t['splits'])}" for name, t in
                     next(iter(results.values()))["tasks"].items())
  lines += ["", "PCC: Pearson r per gene over a split's test spots, averaged over the task's "
            f"genes; mean ± std (ddof 0) over the task's splits ({splits}); mean: over tasks."]
  return "\n".join(lines) + "\n"


def write_bench(results: dict, workdir: str) -> None:
  os.makedirs(workdir, exist_ok=True)
  _text(os.path.join(workdir, "results.json"), json.dumps(results, indent=1))
  _text(os.path.join(workdir, "results.md"), bench_markdown(results))
  split_rows, gene_rows = [], []
  for label, r in results.items():
    for task, t in r["tasks"].items():
      for i, s in enumerate(t["splits"]):
        split_rows.append([label, task, i, ";".join(s["test"])]
                          + [s[m] for m in gene_expression.METRICS])
      per_gene = np.nanmean([s["per_gene_pcc"] for s in t["splits"]], axis=0)
      gene_rows += [[label, task, g, float(v)] for g, v in zip(t["genes"], per_gene)]
  _csv(os.path.join(workdir, "splits.csv"),
       ["checkpoint", "task", "split", "test_samples", *gene_expression.METRICS], split_rows)
  _csv(os.path.join(workdir, "genes.csv"), ["checkpoint", "task", "gene", "pcc"], gene_rows)
  _bench_chart(results, os.path.join(workdir, "bench.png"))


def _bench_chart(results: dict, path: str) -> None:
  """PCC per task (groups) and checkpoint (bars), split std as error bars."""
  labels = list(results)
  tasks = list(results[labels[0]]["tasks"])
  fig, ax = plt.subplots(figsize=(max(5.0, 1.5 + 0.45 * len(tasks) * max(len(labels), 2)), 3.6))
  width = 0.8 / len(labels)
  for j, label in enumerate(labels):
    t = results[label]["tasks"]
    ax.bar([i + j * width for i in range(len(tasks))], [t[n]["mean"]["pcc"] for n in tasks],
           width, yerr=[t[n]["std"]["pcc"] for n in tasks], capsize=2,
           label=f"{label} (mean {results[label]['mean']:.3f})")
  ax.set_xticks([i + width * (len(labels) - 1) / 2 for i in range(len(tasks))])
  ax.set_xticklabels(tasks)
  ax.set(ylabel="PCC (mean over genes)", title="HEST-Benchmark (± std over splits)")
  ax.legend(fontsize=8)
  fig.tight_layout()
  _atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
  plt.close(fig)


def table_markdown(results: dict, title: str) -> str:
  """One row per checkpoint and method, one column per metric."""
  metrics = sorted({m for r in results.values() for v in r["metrics"].values() for m in v})
  lines = [f"# {title}", "", "| checkpoint | backbone | method | " + " | ".join(metrics) + " |",
           "|---|---|---|" + "---|" * len(metrics)]
  for label, r in results.items():
    for method, values in r["metrics"].items():
      cells = [f"{values[m]:.3f}" if m in values else "" for m in metrics]
      lines.append(f"| {label} | {r['backbone']} | {method} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def write_table(results: dict, workdir: str, title: str) -> None:
  os.makedirs(workdir, exist_ok=True)
  _text(os.path.join(workdir, "results.json"), json.dumps(results, indent=1))
  _text(os.path.join(workdir, "results.md"), table_markdown(results, title))
