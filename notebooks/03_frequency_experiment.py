# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A controlled experiment: genes driven by patterns of known frequency
#
# If SSM layers favour low frequencies, a backbone with them should predict "genes" that follow
# low-frequency tissue patterns better than genes that follow high-frequency ones. Real
# expression mixes everything, so here we build tiles where we know: each tile's haematoxylin
# density is the sum of three band-limited random fields, each with its own random amplitude,
#
# * **low**: periods of five patches (tokens) or more,
# * **high**: periods of two to three patches, near the token grid's Nyquist frequency,
# * **fine**: periods of 3-6 pixels, inside a patch (nuclear-scale texture),
#
# and each band's genes follow its amplitude (Poisson counts). The fields have random phases and
# zero mean, so only features that see a band's energy can predict its genes. Each backbone is
# then probed exactly as in evaluation (HEST's ridge probe, k-fold).
#
# Set `MVH_CHECKPOINTS` to add trained backbones; `MVH_SMOKE=1` shrinks every size.

# %%
# %matplotlib inline
import os

import numpy as np
from IPython.display import display
from matplotlib.figure import Figure

from mvhybrid_jax.analysis import figures, frequency, spectral
from mvhybrid_jax.eval import features

SMOKE = os.environ.get("MVH_SMOKE") == "1"
SIZE = dict(depth=2, dim=32, num_heads=2) if SMOKE else {}
N, IMAGE, FOLDS = (48, 112, 3) if SMOKE else (512, 224, 5)

data = frequency.frequency_dataset(N, IMAGE, seed=0)
print({band: [f"{lo / 16:.3f}", f"{hi / 16:.3f}"] for band, (lo, hi) in frequency.BANDS.items()},
      "cycles per pixel")

# %% [markdown]
# Tiles with the strongest amplitude of each band (rows), next to a tile low in all three:

# %%
fig = Figure(figsize=(8, 2.2 * len(data["bands"])))
axes = fig.subplots(len(data["bands"]), 4)
quiet = int(np.argmin(data["amplitude"].sum(1)))
for b, (band, row) in enumerate(zip(data["bands"], axes)):
  top = np.argsort(-data["amplitude"][:, b])[:3]
  for ax, i in zip(row, [quiet, *top]):
    ax.imshow(data["images"][i])
    ax.set_title(f"{band} {data['amplitude'][i, b]:.2f}" if i != quiet else "all low", fontsize=8)
    ax.axis("off")
display(fig)

# %% [markdown]
# ## Backbones
#
# Random-init MV_Hybrid with each eigenvalue init, with the release's step-size init and with
# Mamba's (`release_quirks=False`), ViT_12, and any trained checkpoints.

# %%
backbones = {}
backbones.update(spectral.backbones("random", "mvhybrid", SIZE, ["s4d_real", "s4d_lin"]))
for label, model in spectral.backbones("random", "mvhybrid", {**SIZE, "release_quirks": False},
                                       ["s4d_real", "s4d_lin"]).items():
  backbones[label.replace("mvhybrid", "mvhybrid, Mamba dt init")] = model
backbones.update(spectral.backbones("random", "vit_12", SIZE, ["s4d_real"]))
if os.environ.get("MVH_CHECKPOINTS"):
  backbones.update(spectral.backbones(os.environ["MVH_CHECKPOINTS"], "mvhybrid", {}, ["s4d_real"]))

results = {}
for label, model in backbones.items():
  feats = features.extract(model, data["images"], batch_size=32, desc=label)
  results[label] = {"experiment": frequency.frequency_experiment(feats, data, k=FOLDS)}
display(figures.experiment(results))
print(f"{'backbone':<42}" + "".join(f"{b:>8}" for b in data["bands"]))
for label, r in results.items():
  print(f"{label:<42}" + "".join(f"{r['experiment']['pcc'][b]:8.3f}" for b in data["bands"]))

# %% [markdown]
# Random-init backbones set the floor: their features are random projections, and what they
# reach reflects their architecture alone. The hypothesis predicts that pretraining moves a
# hybrid's strength towards the low band relative to a ViT of the same size; add your
# checkpoints with `MVH_CHECKPOINTS` to see whether it does on your data.
