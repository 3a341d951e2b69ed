"""Figures of the spectral analysis. Each function takes the numbers analysis.spectral computes
and returns a matplotlib Figure (shown inline in a notebook), saved to `path` when one is given
(under a temporary name, then renamed). Figures are built without pyplot, so no backend is
chosen for the caller."""

from __future__ import annotations

import os

import numpy as np
from matplotlib import cm
from matplotlib.figure import Figure


def _save(fig: Figure, path: str | None) -> Figure:
  if path:
    tmp = path + ".tmp"
    fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    os.replace(tmp, path)
  return fig


def _depth_colours(n: int):
  return cm.viridis(np.linspace(0.0, 0.9, max(n, 1)))


def theory(theory: dict, path: str | None = None) -> Figure:
  """|G(iw)| per init, and the total variation over [B, inf) against its bound."""
  fig = Figure(figsize=(11, 4))
  gain_ax, tv_ax = fig.subplots(1, 2)
  for (kind, t), colour in zip(theory.items(), cm.tab10.colors):
    gain_ax.loglog(t["w"], t["gain"], color=colour, label=kind)
    tv_ax.loglog(t["lower"], t["tv"], color=colour, label=f"{kind}: TV")
    tv_ax.loglog(t["lower"], t["bound"], color=colour, ls="--", label=f"{kind}: bound")
  gain_ax.set(xlabel="frequency w", ylabel="|G(iw)|", title="Transfer function (b = c = 1)")
  tv_ax.set(xlabel="lower limit B", ylabel="total variation over [B, inf)",
            title="Mass at high frequency, and its bound")
  gain_ax.legend(fontsize=8)
  tv_ax.legend(fontsize=7, ncol=2)
  return _save(fig, path)


def mixers(backbones: dict, path: str | None = None) -> Figure:
  """Per backbone: each token mixer's kernel by lag and its gain by token frequency, and for
  MambaVision mixers the SSM's alone, coloured by depth (attention dotted), relative to lag 0 /
  frequency 0."""
  fig = Figure(figsize=(15, 3.2 * len(backbones)))
  axes = np.asarray(fig.subplots(len(backbones), 3, squeeze=False))
  for (label, r), (lag_ax, gain_ax, ssm_ax) in zip(backbones.items(), axes):
    for m, colour in zip(r["mixers"], _depth_colours(len(r["mixers"]))):
      lag, gain = np.asarray(m["lag"]), np.asarray(m["gain"])
      kw = dict(color=colour, ls=":" if m["kind"] == "Attention" else "-")
      lag_ax.semilogy(m["lags"], lag / lag[len(lag) // 2], label=f"{m['layer']} {m['kind']}",
                      **kw)
      gain_ax.semilogy(m["freqs"], gain / gain[0], **kw)
      if "ssm" in m:
        ssm_gain = np.asarray(m["ssm"]["gain"])
        ssm_ax.semilogy(m["ssm"]["freqs"], ssm_gain / ssm_gain[0], label=str(m["layer"]), **kw)
    lag_ax.set(title=f"{label}: token-mixing kernel", xlabel="lag t - s (tokens)",
               ylabel="||dy_t/dx_s||^2, rel. to lag 0")
    gain_ax.set(title="mixer: frequency response", xlabel="cycles per token",
                ylabel="gain, rel. to frequency 0")
    ssm_ax.set(title="SSM alone (hidden attention)", xlabel="cycles per token",
               ylabel="gain, rel. to frequency 0")
    lag_ax.legend(fontsize=6, ncol=2)
  fig.tight_layout()
  return _save(fig, path)


def features(backbones: dict, path: str | None = None) -> Figure:
  """Relative log amplitude of patch-token feature maps by frequency, per layer (one panel per
  backbone), and at the highest frequency by depth (all backbones)."""
  n = len(backbones)
  fig = Figure(figsize=(4 * (n + 1), 3.4))
  axes = fig.subplots(1, n + 1, squeeze=False)[0]
  for (label, r), ax, colour in zip(backbones.items(), axes, cm.tab10.colors):
    f = r["features"]
    delta = np.asarray(f["delta"])
    for depth, (row, c) in enumerate(zip(delta, _depth_colours(len(delta)))):
      ax.plot(f["freqs"], row, color=c, label=str(depth) if depth in (0, len(delta) - 1) else None)
    ax.set(title=label, xlabel="frequency (x pi)", ylabel="d log amplitude")
    ax.legend(title="depth", fontsize=7)
    axes[-1].plot(np.arange(len(delta)), f["high"], "o-", color=colour, label=label)
  axes[-1].set(title="High-frequency amplitude by depth", xlabel="depth (0: block input)",
               ylabel="d log amplitude at pi")
  axes[-1].legend(fontsize=7)
  fig.tight_layout()
  return _save(fig, path)


def experiment(backbones: dict, path: str | None = None) -> Figure:
  """Mean PCC of each band's genes, per backbone: which backbone sees which frequency."""
  labels = list(backbones)
  bands = list(next(iter(backbones.values()))["experiment"]["pcc"])
  fig = Figure(figsize=(max(6, 1.6 * len(bands) * len(labels) / 2 + 3), 3.8))
  ax = fig.subplots()
  width = 0.8 / len(labels)
  x = np.arange(len(bands))
  for i, (label, colour) in enumerate(zip(labels, cm.tab10.colors)):
    pcc = [backbones[label]["experiment"]["pcc"][b] for b in bands]
    ax.bar(x + (i - (len(labels) - 1) / 2) * width, pcc, width, color=colour, label=label)
  ax.set_xticks(x, [f"{b} genes" for b in bands])
  ax.set(ylabel="PCC (ridge probe, k-fold)", title="Genes driven by patterns of known frequency")
  ax.axhline(0, color="k", lw=0.5)
  ax.legend(fontsize=7)
  fig.tight_layout()
  return _save(fig, path)
