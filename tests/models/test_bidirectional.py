"""ViM_EinFFT, Hydra_EinFFT and Hydra_Hybrid: shapes, bidirectionality, parameter counts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mvhybrid_jax import models
from mvhybrid_jax.models.hydra import HydraMixer
from mvhybrid_jax.models.vim import VimMixer

NAMES = ["vim_einfft", "hydra_einfft", "hydra_hybrid"]
TINY = dict(dim=64, depth=2, num_heads=2, d_state=8, head_dim=32)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("side, cls_index", [(256, 128), (112, 24)])
def test_shapes_and_middle_cls(name, side, cls_index):
  model = models.create(name, rngs=nnx.Rngs(0), **TINY)
  model.eval()
  x = np.random.default_rng(side).standard_normal((2, side, side, 3)).astype(np.float32)
  out, embedding = nnx.jit(lambda m, x: (m(x), m.embed(x)))(model, x)
  n = (side // 16) ** 2
  assert out["x_norm_clstoken"].shape == (2, 64) and out["x_norm_patchtokens"].shape == (2, n, 64)
  assert model.cls_index(n) == cls_index
  assert np.isfinite(np.asarray(out["x_norm_patchtokens"])).all()
  assert embedding.shape == (2, 128)


def influence(mixer, tokens=12, dim=32, t=6):
  """|d y_t / d x_s| summed over channels, for each input token s."""
  x = jax.random.normal(jax.random.key(0), (1, tokens, dim))
  jac = nnx.jit(lambda m, v: jax.jacfwd(lambda v: m(v)[0, t])(v))(mixer, x)  # (dim, 1, tokens, dim)
  return np.asarray(jnp.abs(jac).sum(axis=(0, 1, 3)))


@pytest.mark.parametrize("make", [
    lambda bi: VimMixer(32, d_state=4, bidirectional=bi, scan_impl="reference",
                        rngs=nnx.Rngs(0)),
    lambda bi: HydraMixer(32, d_state=4, head_dim=16, chunk_size=4, bidirectional=bi,
                          rngs=nnx.Rngs(0)),
], ids=["vim", "hydra"])
def test_bidirectionality(make):
  """Token 6's output depends on tokens on both sides; without the backward scan only on tokens
  0..6 (Hydra's conv turns causal too)."""
  both = influence(make(True))
  assert both[:6].sum() > 1e-3 and both[7:].sum() > 1e-3
  assert both[0] > 1e-9 and both[-1] > 1e-9  # the scans reach the ends, beyond the conv
  forward = influence(make(False))
  assert forward[:7].sum() > 1e-3
  np.testing.assert_array_equal(forward[7:], 0.0)


def test_parameter_counts():
  """At the paper's size (dim 384, depth 24): documented in docs/backbones.md."""
  counts = {n: models.count_params(models.create(n, rngs=nnx.Rngs(0))) for n in NAMES}
  print(counts)
  assert counts == {"vim_einfft": 28_940_160, "hydra_einfft": 28_160_736,
                    "hydra_hybrid": 35_522_352}
