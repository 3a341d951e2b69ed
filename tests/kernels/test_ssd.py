"""kernels.ssd: reference and chunked against a float64 numpy loop, random shapes, bf16, states,
gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kernels import ssd


def numpy_ssd(x, dt, A, B, C, D=None, h0=None):
  """The recurrence, step by step, in float64."""
  b, l, h, p = x.shape
  g, n = B.shape[2], B.shape[3]
  state = np.zeros((b, h, p, n)) if h0 is None else h0.astype(np.float64).copy()
  y = np.zeros((b, l, h, p))
  for t in range(l):
    for k in range(h):
      grp = k // (h // g)
      state[:, k] = (np.exp(dt[:, t, k] * A[k])[:, None, None] * state[:, k]
                     + (dt[:, t, k, None] * x[:, t, k])[:, :, None] * B[:, t, grp, None, :])
      y[:, t, k] = np.einsum("bpn,bn->bp", state[:, k], C[:, t, grp])
      if D is not None:
        y[:, t, k] += D[k] * x[:, t, k]
  return y, state


def inputs(seed, b=2, l=37, h=4, p=3, g=2, n=5):
  rng = np.random.default_rng(seed)
  return dict(x=rng.standard_normal((b, l, h, p)), dt=rng.uniform(0.01, 0.5, (b, l, h)),
              A=-rng.uniform(0.2, 2.0, h), B=rng.standard_normal((b, l, g, n)),
              C=rng.standard_normal((b, l, g, n)), D=rng.standard_normal(h))


@pytest.mark.parametrize("impl, chunk", [("reference", 64), ("chunked", 8), ("chunked", 16),
                                         ("chunked", 64), ("chunked", 1)])
@pytest.mark.parametrize("seed, shape", [(0, dict()), (1, dict(l=16, h=2, g=1, p=4, n=3)),
                                         (2, dict(b=1, l=5, h=6, g=3))])
def test_matches_numpy(impl, chunk, seed, shape):
  a = inputs(seed, **shape)
  h0 = np.random.default_rng(seed + 9).standard_normal(
      (a["x"].shape[0], a["x"].shape[2], a["x"].shape[3], a["B"].shape[3]))
  want, want_state = numpy_ssd(**a, h0=h0)
  f32 = {k: jnp.asarray(v, jnp.float32) for k, v in a.items()}
  y, state = ssd(**f32, initial_state=jnp.asarray(h0, jnp.float32), return_final_state=True,
                 chunk_size=chunk, impl=impl)
  np.testing.assert_allclose(np.asarray(y), want, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(np.asarray(state), want_state, rtol=1e-4, atol=1e-4)


def test_softplus_bias_and_bf16():
  a = inputs(3)
  bias = np.random.default_rng(4).standard_normal(4)
  raw = a["dt"] - 0.3
  want, _ = numpy_ssd(a["x"], np.log1p(np.exp(raw + bias)), a["A"], a["B"], a["C"], a["D"])
  args = {k: jnp.asarray(v, jnp.float32) for k, v in a.items() if k != "dt"}
  y = ssd(dt=jnp.asarray(raw, jnp.float32), dt_bias=jnp.asarray(bias, jnp.float32),
          dt_softplus=True, chunk_size=16, **args)
  np.testing.assert_allclose(np.asarray(y), want, rtol=1e-4, atol=1e-4)
  bf = {k: jnp.asarray(v, jnp.bfloat16) for k, v in a.items()}
  y16 = ssd(**bf, chunk_size=16)
  assert y16.dtype == jnp.bfloat16
  exact, _ = numpy_ssd(*(np.asarray(bf[k], np.float64) for k in ("x", "dt", "A", "B", "C", "D")))
  err = np.abs(np.asarray(y16, np.float64) - exact).max() / np.abs(exact).max()
  assert err < 2e-2


def test_gradients_agree():
  a = {k: jnp.asarray(v, jnp.float32) for k, v in inputs(5, l=20).items()}
  loss = lambda impl: lambda x, dt, A, B, C: jnp.sum(
      jnp.sin(ssd(x, dt, A, B, C, chunk_size=8, impl=impl)))
  args = (a["x"], a["dt"], a["A"], a["B"], a["C"])
  ref = jax.grad(loss("reference"), argnums=tuple(range(5)))(*args)
  chk = jax.jit(jax.grad(loss("chunked"), argnums=tuple(range(5))))(*args)
  for r, c in zip(ref, chk):
    assert np.isfinite(np.asarray(c)).all()
    np.testing.assert_allclose(np.asarray(c), np.asarray(r), rtol=1e-3, atol=1e-4)
  # One gradient against central differences of the float64 oracle.
  x64 = {k: np.asarray(v, np.float64) for k, v in a.items()}
  eps, idx = 1e-6, (0, 3, 1, 2)
  bump = lambda s: np.sin(numpy_ssd(**{**x64, "D": None, "x": x64["x"] + s})[0]).sum()
  delta = np.zeros_like(x64["x"])
  delta[idx] = eps
  fd = (bump(delta) - bump(-delta)) / (2 * eps)
  assert float(ref[0][idx]) == pytest.approx(fd, rel=1e-3)


def test_bad_input():
  a = {k: jnp.asarray(v, jnp.float32) for k, v in inputs(0).items()}
  with pytest.raises(ValueError, match="impl: expected one of"):
    ssd(**a, impl="pallas")
  with pytest.raises(ValueError, match="groups do not divide"):
    ssd(**{**a, "B": a["B"][:, :, :1].repeat(3, 2), "C": a["C"][:, :, :1].repeat(3, 2)})
  with pytest.raises(ValueError, match=r"dt: expected \(2, 37, 4\)"):
    ssd(**{**a, "dt": a["dt"][:, :5]})
