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
# # Why negative real eigenvalues? The theory, and what the release's init does with it
#
# MV_Hybrid's first half mixes tokens with a diagonal state space model whose eigenvalues start
# negative and real, A = -1, ..., -16 (S4D-Real). The paper's hypothesis: this gives a
# **low-frequency bias** that captures the subtle, low-frequency morphology tied to gene
# expression. This notebook checks the argument behind it (Yu et al., "Tuning Frequency Bias of
# State Space Models", ICLR 2025) numerically, then asks how much of it survives the released
# model's initialisation.
#
# Run it top to bottom; `MVH_SMOKE=1` shrinks every size (the test suite runs it that way).

# %%
# %matplotlib inline
import os

from flax import nnx
from IPython.display import display
from matplotlib.figure import Figure

from mvhybrid_jax.analysis import figures, probing, theory
from mvhybrid_jax.models.mamba_vision import A_INITS, MambaVisionMixer

SMOKE = os.environ.get("MVH_SMOKE") == "1"
STATE = 16            # eigenvalues per channel, as in the paper
DIM = 32 if SMOKE else 384
TOKENS = 16 if SMOKE else 64

# %% [markdown]
# ## 1. The transfer function of a diagonal SSM
#
# With eigenvalues $a_j = x_j + i y_j$ the continuous-time transfer function is
# $G(i\omega) = \sum_j c_j b_j / (i\omega - a_j)$. A negative real eigenvalue is a one-pole
# low-pass filter; a complex one resonates at $\omega \approx y_j$. The three inits of
# `models.mamba_vision.eigenvalue_init`:

# %%
fig = Figure(figsize=(5, 3.5))
ax = fig.subplots()
for kind, marker in zip(A_INITS, "osx"):
  a = theory.eigenvalues(kind, STATE)
  ax.scatter(a.real, a.imag, marker=marker, label=kind)
ax.set(xlabel="Re a", ylabel="Im a", title="Eigenvalues of one channel")
ax.legend()
display(fig)

# %% [markdown]
# ## 2. Total variation over high frequencies, and its bound
#
# How much $G$ varies above a frequency $B$ measures what the layer can express there:
# $\mathrm{TV}_{[B,\infty)}(G) = \int_B^\infty |G'(\omega)|\,d\omega \le
# \sum_j |c_j b_j| / (B - y_j)$. For real eigenvalues ($y_j = 0$) it decays as $O(1/B)$ from the
# start; for S4D-Lin the mass sits up to $\omega \approx 15\pi$, where its bound is not even
# defined.

# %%
bounds = theory.theory(n=STATE, n_lower=12 if SMOKE else 24)
display(figures.theory(bounds))
print(f"{'init':<12} {'B':>8} {'TV':>10} {'bound':>10}")
for kind, t in bounds.items():
  for lower, tv, bound in list(zip(t["lower"], t["tv"], t["bound"]))[::4]:
    print(f"{kind:<12} {lower:8.2f} {tv:10.4f} {bound:10.4f}")
    assert tv <= bound * (1 + 1e-9)

# %% [markdown]
# ## 3. From continuous time to tokens: the step size decides
#
# The mixer discretises with a per-token step $\Delta$: token $s$ reaches token $t$ through
# $\exp(A\,(\Delta_{s+1} + \dots + \Delta_t))$, times input-dependent $B_s$, $C_t$. That is the
# SSM's "hidden attention" matrix (`probing.ssm_operator`, checked against the scan in the
# tests). Its gain along the token sequence shows how much low-pass bias the model really
# starts with.
#
# The release overrides Mamba's step-size init with its global Linear init, so at init
# $\Delta = \mathrm{softplus}(0) \approx 0.69$: with $A = -1..-16$ a token is forgotten within a
# token or two. Mamba's own init ($\Delta$ log-uniform in $[10^{-3}, 10^{-1}]$,
# `release_quirks=False`) keeps memory for tens of tokens.

# %%
fig = Figure(figsize=(11, 3.6))
axes = fig.subplots(1, 2, sharey=True)
rows = []
for ax, quirks in zip(axes, (True, False)):
  for kind in A_INITS:
    mixer = MambaVisionMixer(DIM, a_init=kind, release_quirks=quirks, rngs=nnx.Rngs(0))
    s = probing.ssm_spectrum(mixer, DIM, tokens=TOKENS)
    ax.semilogy(s["freqs"], s["gain"] / s["gain"][0], label=kind)
    rows.append((quirks, kind, s["high_low_ratio"]))
  ax.set(title=("release init (delta ~ 0.69)" if quirks else "Mamba's dt init"),
         xlabel="cycles per token", ylabel="SSM gain, rel. to frequency 0")
  ax.legend()
display(fig)
print(f"{'release init':<13} {'A init':<12} high/low gain")
for quirks, kind, ratio in rows:
  print(f"{str(quirks):<13} {kind:<12} {ratio:.3f}")

# %% [markdown]
# With Mamba's step sizes, real eigenvalues make the SSM a clear low-pass filter along the
# token sequence, and S4D-Lin's complex eigenvalues much less so: the theory carries over. With
# the release's init the SSM starts close to all-pass, so whatever low-frequency bias a trained
# MV_Hybrid shows was learned during pretraining. Notebook 02 measures it on checkpoints.
