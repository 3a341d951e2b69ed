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
# # Token mixers and feature maps by depth: random init against your checkpoints
#
# Two measurements of frequency behaviour that work on any backbone:
#
# * **Token mixers.** Each block's mixer, linearised at an input, as a map from token $s$ to
#   token $t$: its kernel $\|\partial y_t / \partial x_s\|^2$ by lag and its gain to sinusoids
#   along the token sequence; for MambaVision mixers also the SSM alone.
# * **Feature maps.** The 2-D Fourier transform of each layer's patch tokens on their grid: the
#   log amplitude at each frequency relative to the DC term (Park & Kim, "How do vision
#   transformers work?", 2022). Falling curves mean a layer passes low frequencies and damps
#   high ones.
#
# Set `MVH_CHECKPOINTS` to train.py workdirs or exported backbones (comma-separated) to add
# trained models; `MVH_SMOKE=1` shrinks every size.

# %%
# %matplotlib inline
import os

from IPython.display import display

from mvhybrid_jax.analysis import figures, probing, spectral

SMOKE = os.environ.get("MVH_SMOKE") == "1"
SIZE = dict(depth=2, dim=32, num_heads=2) if SMOKE else {}
IMAGE, N_IMAGES, TOKENS, PROBES = (112, 4, 16, 2) if SMOKE else (224, 32, 64, 4)

backbones = {}
backbones.update(spectral.backbones("random", "mvhybrid", SIZE, ["s4d_real"]))
backbones.update(spectral.backbones("random", "vit_12", SIZE, ["s4d_real"]))
if os.environ.get("MVH_CHECKPOINTS"):
  backbones.update(spectral.backbones(os.environ["MVH_CHECKPOINTS"], "mvhybrid", {}, ["s4d_real"]))
print(list(backbones))

# %% [markdown]
# ## Token mixers
#
# Attention near its init attends almost uniformly: its kernel is flat in lag, so it passes the
# sequence mean and little else (a low-pass filter in the extreme). The MambaVision mixer's
# kernel is dominated at init by its depthwise convolutions and the D skip (lags -1..2); the SSM
# part is orders of magnitude below, because the release's Linear init makes B and C small.

# %%
mixers = {label: probing.backbone_mixers(model, tokens=TOKENS, probes=PROBES)
          for label, model in backbones.items()}
display(figures.mixers({label: {"mixers": rows} for label, rows in mixers.items()}))
for label, rows in mixers.items():
  ratios = ", ".join(f"{r['layer']}:{r['high_low_ratio']:.2f}" for r in rows)
  print(f"{label}: high/low gain by layer  {ratios}")

# %% [markdown]
# ## Feature maps by depth
#
# H&E-like patches from the synthetic studies, through each backbone; the relative log
# amplitude of the patch tokens after each block.

# %%
patches = probing.synthetic_patches(N_IMAGES, IMAGE)
spectra = {label: probing.layer_spectra(model, patches, batch_size=8)
           for label, model in backbones.items()}
display(figures.features({label: {"features": s} for label, s in spectra.items()}))
for label, s in spectra.items():
  print(f"{label}: d log amplitude at pi by depth  "
        + " ".join(f"{v:.2f}" for v in s["high"]))

# %% [markdown]
# Reading the curves: a layer whose high-frequency amplitude falls relative to the layer
# before has acted as a low-pass filter on the token grid. Compare a trained MV_Hybrid's SSM
# half (blocks 0-11) with its attention half and with ViT_12 at the same depth; the paper's
# hypothesis predicts the SSM blocks keep the low frequencies that carry expression signal.
