"""The loss-curve figure of a run, from its metrics.jsonl."""

from __future__ import annotations

import json
import os

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

TERMS = ("loss", "dino", "ibot", "koleo")


def loss_curves(metrics_path: str, out_path: str) -> None:
  """Total loss and its DINO, iBOT and KoLeo terms by step, and the images/s, as one PNG (written
  to a temporary name, then renamed)."""
  rows = [json.loads(line) for line in open(metrics_path) if line.strip()]
  if not rows:
    return
  rows = sorted({r["step"]: r for r in rows}.values(), key=lambda r: r["step"])  # resumes repeat
  steps = [r["step"] for r in rows]
  fig, (ax, speed) = plt.subplots(1, 2, figsize=(10, 3.6))
  for key in TERMS:
    ax.plot(steps, [r[key] for r in rows], label=key, lw=2 if key == "loss" else 1)
  ax.set(xlabel="step", ylabel="loss", title="pretraining loss")
  ax.legend()
  speed.plot(steps, [r["images_per_s"] for r in rows])
  speed.set(xlabel="step", ylabel="images / s", title="throughput")
  fig.tight_layout()
  tmp = out_path + ".tmp.png"
  fig.savefig(tmp, dpi=100)
  plt.close(fig)
  os.replace(tmp, out_path)
