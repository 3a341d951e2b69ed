"""Learning curves at CPU scale: what pretraining buys over the random init, step by step.

    python benchmarks/learning.py                            # mvhybrid and vit_12, :demo, CPU
    python benchmarks/learning.py --backbones mvhybrid --every 500 --epochs 10

Pretrains each backbone's :demo config (train.py's trainer, resumable: a finished workdir is
reused), keeping a checkpoint every --every steps, then evaluates the teacher of each kept step,
and step 0 (the init both networks start from: the random baseline of the same architecture), on
the synthetic demo data: kNN and linear-probe balanced accuracy on the nine classes (eval.py's
probes, embedding cls+mean) and gene-expression PCC under leave-one-study-out (HEST's ridge
probe). Prints a table, writes JSON (--out) and learning.png beside it.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from types import SimpleNamespace


sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.scan import write_results  # noqa: E402
from mvhybrid_jax import checkpoints  # noqa: E402
from mvhybrid_jax.data import spots as spots_lib  # noqa: E402
from mvhybrid_jax.eval import classification, features, gene_expression, patches  # noqa: E402
from mvhybrid_jax.train import ssl, trainer  # noqa: E402

BACKBONES = ("mvhybrid", "vit_12", "vit_24", "vim_einfft", "hydra_einfft", "hydra_hybrid")
METRICS = ("knn", "linear", "loso_pcc")


def demo_config(name: str, every: int, epochs: int | None):
  config = importlib.import_module(f"configs.{name}_crc").get_config("demo")
  if epochs:
    config.epochs = epochs
  total = config.epochs * config.steps_per_epoch
  config.checkpoint_every, config.keep_checkpoints = every, total // every + 1
  return config


def scores(model, classes, spots, cache: str) -> dict:
  """kNN and linear balanced accuracy, LOSO PCC of one backbone."""
  emb = lambda images, desc: features.extract(model, images, cache_dir=cache, desc=desc)
  train, test = (emb(classes[s][0], s) for s in ("train", "test"))
  args = (train, classes["train"][1], test, classes["test"][1])
  loso = gene_expression.evaluate(emb(spots.images, "spots"), spots.counts, "loso",
                                  slide=spots.slide, study=spots.study, patient=spots.patient)
  return {"knn": classification.knn(*args)["balanced_accuracy"],
          "linear": classification.linear_probe(*args)["balanced_accuracy"],
          "loso_pcc": loso["mean"]["pcc"]}


def plot(curves: dict, path: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  titles = {"knn": "kNN balanced accuracy (9 classes)",
            "linear": "linear probe balanced accuracy", "loso_pcc": "gene expression PCC, LOSO"}
  fig, axes = plt.subplots(1, 3, figsize=(15, 4))
  for ax, key in zip(axes, METRICS):
    for name, rows in curves.items():
      steps = [r["step"] for r in rows]
      line, = ax.plot(steps, [r[key] for r in rows], "o-", label=name)
      ax.axhline(rows[0][key], color=line.get_color(), ls=":", lw=1)  # its random init
    ax.set(title=titles[key], xlabel="pretraining step (0 = random init, dotted)")
    ax.grid(alpha=0.3)
  axes[0].legend()
  fig.tight_layout()
  fig.savefig(path + ".tmp.png", dpi=100)
  plt.close(fig)
  os.replace(path + ".tmp.png", path)
  print(f"# wrote {path}")


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--backbones", default="mvhybrid,vit_12")
  parser.add_argument("--every", type=int, default=500, help="steps between evaluated checkpoints")
  parser.add_argument("--epochs", type=int, default=None, help="override the :demo length")
  parser.add_argument("--workdir", default="runs/learning", help="one pretraining run per backbone")
  parser.add_argument("--out", default="benchmarks/results/learning.json")
  args = parser.parse_args()
  logging.basicConfig(level=logging.WARNING)
  names = args.backbones.split(",")
  unknown = sorted(set(names) - set(BACKBONES))
  if unknown:
    parser.error(f"--backbones: unknown {unknown}; expected some of {list(BACKBONES)}")
  classes, _ = patches.load_splits(SimpleNamespace(train_path="", test_path="",
                                                   synthetic_config="demo"))
  spots = spots_lib.synthetic("demo")
  curves, runs = {}, {}
  for name in names:
    config = demo_config(name, args.every, args.epochs)
    workdir = os.path.join(args.workdir, name)
    trainer.train(config, workdir)
    cache = os.path.join(workdir, "features")
    init = ssl.from_config(config).backbone  # the student's init, which the teacher copies
    rows = [{"step": 0, **scores(init, classes, spots, cache)}]
    total = config.epochs * config.steps_per_epoch
    for step in range(args.every, total + 1, args.every):
      model, _ = checkpoints.load_backbone(workdir, step=step)
      rows.append({"step": step, **scores(model, classes, spots, cache)})
    curves[name], runs[name] = rows, dict(config=config.to_dict(), workdir=workdir)
  print(f"| backbone | step | {' | '.join(METRICS)} |\n|---|---|{'---|' * len(METRICS)}")
  for name, rows in curves.items():
    for r in rows:
      print(f"| {name} | {r['step']} | " + " | ".join(f"{r[k]:.3f}" for k in METRICS) + " |")
  write_results(args.out, curves=curves, runs=runs)
  plot(curves, os.path.join(os.path.dirname(os.path.abspath(args.out)), "learning.png"))


if __name__ == "__main__":
  main()
