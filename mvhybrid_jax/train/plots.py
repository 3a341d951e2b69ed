"""The figure of a run, from its metrics.jsonl: losses, throughput and learning rate, and the
monitors that tell learning from collapse (README, "Reading a run")."""

from __future__ import annotations

import json
import os

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

TERMS = ("loss", "dino", "ibot", "koleo")
GRAD_NORMS = ("grad_norm_backbone", "grad_norm_dino_head", "grad_norm_ibot_head")


def _plot(ax, rows, key, **kw):
  """One metric by step, where the rows have it (runs written before a metric existed lack it)."""
  pts = [(r["step"], r[key]) for r in rows if key in r]
  if pts:
    ax.plot(*zip(*pts), **kw)


def loss_curves(metrics_path: str, out_path: str) -> None:
  """One PNG (written to a temporary name, then renamed). Top: the total loss and its DINO, iBOT
  and KoLeo terms; images/s; the learning rate. Bottom: the teacher's target entropy (CLS,
  masked patches) against its maximum ln K and its mean max-probability; the student's effective
  rank and the prototypes its teacher's CLS targets pick; each module's gradient norm before
  clipping."""
  rows = [json.loads(line) for line in open(metrics_path) if line.strip()]
  if not rows:
    return
  rows = sorted({r["step"]: r for r in rows}.values(), key=lambda r: r["step"])  # resumes repeat
  fig, axes = plt.subplots(2, 3, figsize=(15, 7))
  (loss, speed, lr), (entropy, rank, grads) = axes
  for key in TERMS:
    _plot(loss, rows, key, label=key, lw=2 if key == "loss" else 1)
  loss.set(xlabel="step", ylabel="loss", title="pretraining loss")
  loss.legend()
  _plot(speed, rows, "images_per_s")
  speed.set(xlabel="step", ylabel="images / s", title="throughput")
  _plot(lr, rows, "lr")
  lr.set(xlabel="step", ylabel="learning rate", title="learning rate (before group multipliers)")
  _plot(entropy, rows, "target_entropy_cls", label="CLS targets")
  _plot(entropy, rows, "target_entropy_patch", label="masked-patch targets")
  _plot(entropy, rows, "target_entropy_max", label="ln K (uniform)", ls="--", color="grey")
  entropy.set(xlabel="step", ylabel="entropy (nats)", title="teacher target entropy")
  entropy.legend(fontsize=8)
  sharp = entropy.twinx()
  _plot(sharp, rows, "target_max_prob", color="black", lw=0.8)
  sharp.set_ylabel("mean max-probability (black)")
  _plot(rank, rows, "student_rank", label="student CLS effective rank", color="C0")
  rank.set(xlabel="step", ylabel="effective rank", title="spread of the embeddings")
  used = rank.twinx()
  _plot(used, rows, "prototypes_used", color="C1")
  used.set_ylabel("prototypes picked in the batch (orange)")
  for key in GRAD_NORMS:
    _plot(grads, rows, key, label=key.removeprefix("grad_norm_"))
  grads.set(xlabel="step", ylabel="norm", yscale="log", title="gradient norm before clipping")
  grads.legend(fontsize=8)
  fig.tight_layout()
  tmp = out_path + ".tmp.png"
  fig.savefig(tmp, dpi=90)
  plt.close(fig)
  os.replace(tmp, out_path)
