"""kernels.selective_scan: every impl against a float64 numpy oracle, values and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import export

from kernels import scan, scan_pallas, selective_scan

IMPLS = ("reference", "sequential", "xla", "pallas")
ARG_NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


def scan_np(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
  """The recurrence in float64 numpy, one step at a time (independent of the JAX code)."""
  u, delta = np.asarray(u, np.float64), np.asarray(delta, np.float64)
  A = np.asarray(A, np.complex128 if np.iscomplexobj(A) else np.float64)
  B, C = (np.asarray(x, np.float64) for x in (B, C))
  if B.ndim == 3:
    B, C = B[:, :, None], C[:, :, None]
  batch, length, channels = u.shape
  per_group = channels // B.shape[2]
  B, C = np.repeat(B, per_group, axis=2), np.repeat(C, per_group, axis=2)  # (b, L, ch, N)
  d = delta + (0.0 if delta_bias is None else np.asarray(delta_bias, np.float64))
  if delta_softplus:
    d = np.logaddexp(0.0, d)
  h = np.zeros((batch, channels, A.shape[1]), A.dtype)
  y = np.zeros((batch, length, channels))
  for t in range(length):
    h = np.exp(d[:, t, :, None] * A) * h + (d[:, t] * u[:, t])[:, :, None] * B[:, t]
    y[:, t] = np.sum(C[:, t] * h, axis=-1).real
  if D is not None:
    y = y + np.asarray(D, np.float64) * u
  if z is not None:
    z = np.asarray(z, np.float64)
    y = y * z / (1.0 + np.exp(-z))
  return y, h


def make_case(batch, length, channels, state, groups, *, z=True, D=True, bias=True,
              dtype=jnp.float32, complex_a=False, softplus=True, seed=0):
  """Random inputs; without softplus, delta (+ bias) is kept positive so that h stays bounded."""
  rng = np.random.default_rng(seed)
  f = lambda *s: rng.standard_normal(s).astype(np.float32)
  a = -np.exp(rng.uniform(-1.0, 1.5, (channels, state))).astype(np.float32)
  if complex_a:
    a = (a + 1j * np.pi * rng.uniform(0, 4, (channels, state))).astype(np.complex64)
  bc_shape = (batch, length, state) if groups is None else (batch, length, groups, state)
  return dict(
      u=jnp.asarray(f(batch, length, channels), dtype),
      delta=jnp.asarray(0.5 * f(batch, length, channels) if softplus else
                        0.4 + 0.5 * np.abs(f(batch, length, channels)), dtype),
      A=jnp.asarray(a),
      B=jnp.asarray(f(*bc_shape), dtype),
      C=jnp.asarray(f(*bc_shape), dtype),
      D=jnp.asarray(f(channels)) if D else None,
      z=jnp.asarray(f(batch, length, channels), dtype) if z else None,
      delta_bias=(jnp.asarray(0.3 * f(channels) if softplus else 0.3 * np.abs(f(channels)))
                  if bias else None),
  )


def call(x, impl, softplus, return_last_state=True):
  return selective_scan(x["u"], x["delta"], x["A"], x["B"], x["C"], x["D"], z=x["z"],
                        delta_bias=x["delta_bias"], delta_softplus=softplus,
                        return_last_state=return_last_state, impl=impl)


def rel_err(got, want):
  got, want = np.asarray(got, np.complex128), np.asarray(want, np.complex128)
  return np.max(np.abs(got - want)) / np.max(np.abs(want))


# (batch, length, channels, state, groups, options): lengths 1, 50, 257; channels that are not
# multiples of 128; state 8 and 16; grouped and shared B/C; with and without z, D, delta_bias.
CASES = {
    "L1_z_softplus_nobias": ((2, 1, 20, 8, None), dict(bias=False), True),
    "L50_groups2_noz_nosoftplus": ((2, 50, 48, 16, 2), dict(z=False), False),
    "L257_noD": ((1, 257, 100, 16, 1), dict(D=False), True),
    "L50_groups3_bf16": ((2, 50, 36, 8, 3), dict(dtype=jnp.bfloat16), True),
}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", list(CASES))
def test_forward_matches_numpy_oracle(impl, case):
  shape, options, softplus = CASES[case]
  x = make_case(*shape, **options, softplus=softplus)
  y, h_last = call(x, impl, softplus)
  y_want, h_want = scan_np(**x, delta_softplus=softplus)
  assert y.dtype == x["u"].dtype and y.shape == x["u"].shape
  assert h_last.dtype == jnp.float32 and h_last.shape == (shape[0], shape[2], shape[3])
  tol = 1e-2 if x["u"].dtype == jnp.bfloat16 else 2e-5
  assert rel_err(y.astype(jnp.float32), y_want) < tol
  assert rel_err(h_last, h_want) < (1e-4 if tol < 1e-3 else 1e-3)  # h is float32 in both


@pytest.mark.parametrize("impl", ("reference", "xla", "auto"))
def test_complex_eigenvalues(impl):
  x = make_case(2, 50, 24, 8, None, complex_a=True)
  y, h_last = call(x, impl, True)
  y_want, h_want = scan_np(**x, delta_softplus=True)
  assert h_last.dtype == jnp.complex64
  assert rel_err(y, y_want) < 2e-5 and rel_err(h_last, h_want) < 2e-5


@pytest.mark.parametrize("impl", ("pallas", "sequential"))
def test_real_valued_impls_reject_complex_a(impl):
  x = make_case(1, 4, 8, 4, None, complex_a=True)
  with pytest.raises(ValueError, match=f"A: complex .* the {impl} scan is real-valued"):
    call(x, impl, True)


def _loss_fns(x, softplus, impl, seed=1):
  """sum(y * w) + sum(h_last * wh): a scalar touching every output, for jax and for numpy."""
  rng = np.random.default_rng(seed)
  w = rng.standard_normal(x["u"].shape)
  wh = rng.standard_normal((x["u"].shape[0], *x["A"].shape))
  names = [k for k in ARG_NAMES if x[k] is not None]

  def loss(*args):
    y, h = call({**x, **dict(zip(names, args))}, impl, softplus)
    return jnp.sum(y.astype(jnp.float32) * w) + jnp.sum(h * wh)

  def loss_np(**kw):
    y, h = scan_np(**{**x, **kw}, delta_softplus=softplus)
    return np.sum(y * w) + np.sum(h * wh)

  return names, loss, loss_np


GRAD_CASES = {
    "L50_groups2_z": ((2, 50, 24, 8, 2), dict(), True),
    "L257_shared_noz": ((1, 257, 20, 16, None), dict(z=False), False),
}


@pytest.fixture(scope="module")
def reference_grads():
  cache = {}

  def get(case):
    if case not in cache:
      shape, options, softplus = GRAD_CASES[case]
      x = make_case(*shape, **options, softplus=softplus, seed=3)
      names, loss, _ = _loss_fns(x, softplus, "reference")
      cache[case] = jax.jit(jax.grad(loss, argnums=tuple(range(len(names)))))(
          *[x[k] for k in names])
    return cache[case]

  return get


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", list(GRAD_CASES))
def test_gradients(impl, case, reference_grads):
  """Every argument's gradient: against jax.grad of the reference, and against central finite
  differences of the float64 oracle along a random direction."""
  shape, options, softplus = GRAD_CASES[case]
  x = make_case(*shape, **options, softplus=softplus, seed=3)
  names, loss, loss_np = _loss_fns(x, softplus, impl)
  grads = jax.jit(jax.grad(loss, argnums=tuple(range(len(names)))))(*[x[k] for k in names])
  rng = np.random.default_rng(5)
  for name, g, g_ref in zip(names, grads, reference_grads(case)):
    assert g.shape == x[name].shape and g.dtype == x[name].dtype, name
    assert rel_err(g, g_ref) < 1e-4, f"d{name} vs reference: {rel_err(g, g_ref):.2e}"
    v = rng.standard_normal(x[name].shape)
    eps = 1e-5
    base = np.asarray(x[name], np.float64)
    fd = (loss_np(**{name: base + eps * v}) - loss_np(**{name: base - eps * v})) / (2 * eps)
    analytic = float(np.sum(np.asarray(g, np.float64) * v))
    assert abs(analytic - fd) <= 1e-3 * abs(fd) + 1e-3, f"d{name}: {analytic} vs fd {fd}"


@pytest.mark.parametrize("impl", IMPLS)
def test_vmap_and_jit(impl):
  x = make_case(2, 17, 16, 8, None, z=False, seed=4)
  stacked = {k: (None if v is None else jnp.stack([v, v[::-1] * 0.5]))
             for k, v in x.items()}
  axes = {k: (None if v is None else 0) for k, v in stacked.items()}
  y, h = jax.jit(jax.vmap(lambda s: call(s, impl, True), in_axes=(axes,)))(stacked)
  for i in range(2):
    y_want, h_want = scan_np(**{k: None if v is None else v[i] for k, v in stacked.items()},
                             delta_softplus=True)
    assert rel_err(y[i], y_want) < 2e-5 and rel_err(h[i], h_want) < 2e-5


@pytest.mark.parametrize("state_bytes", [4 << 20, 2 * 24 * 8 * 4])
def test_auto_matches_oracle(monkeypatch, state_bytes):
  """auto (on CPU: the sequential scan over cache-sized batch tiles), untiled and in tiles of
  2: values against the oracle, gradients against jax.grad of the reference."""
  monkeypatch.setattr(scan, "CACHE_STATE_BYTES", state_bytes)
  x = make_case(6, 33, 24, 8, 2)
  y, h = call(x, "auto", True)
  y_want, h_want = scan_np(**x, delta_softplus=True)
  assert rel_err(y, y_want) < 2e-5 and rel_err(h, h_want) < 2e-5
  names = [k for k in ARG_NAMES if x[k] is not None]
  grads = {}
  for impl in ("auto", "reference"):
    _, loss, _ = _loss_fns(x, True, impl)
    grads[impl] = jax.grad(loss, argnums=tuple(range(len(names))))(*[x[k] for k in names])
  for name, g, g_ref in zip(names, grads["auto"], grads["reference"]):
    assert rel_err(g, g_ref) < 1e-4, name


def test_cache_batch_tile():
  tile = scan._cache_batch_tile
  assert tile(128, 384, 16) == 128          # 3 MiB of float32 state: one tile
  assert tile(512, 384, 16) == 128          # 12 MiB: four tiles of 3 MiB
  assert tile(7, 384 * 1024, 16) == 1       # even one item is over: one at a time


@pytest.fixture(scope="module")
def config_case():
  """A length-13 case and jax.grad of the reference on it."""
  x = make_case(2, 13, 40, 8, None, seed=6)
  names, loss, _ = _loss_fns(x, True, "reference")
  want = jax.jit(jax.grad(loss, argnums=tuple(range(len(names)))))(*[x[k] for k in names])
  return x, names, want


@pytest.mark.parametrize("cfg", [
    # prefetch with no full chunk (forward), with a tail, with none (13 steps in one chunk)
    dict(fwd_block=8, bwd_block=16, fwd_chunk=16, bwd_chunk=2, fwd_prefetch=True),
    dict(fwd_block=32, bwd_block=8, fwd_chunk=3, bwd_chunk=3),
    dict(fwd_chunk=4, bwd_chunk=2, fwd_prefetch=True, bwd_prefetch=True),
    dict(fwd_chunk=13, bwd_chunk=13, fwd_prefetch=True, bwd_prefetch=True),
], ids=lambda cfg: ",".join(f"{k}={v}" for k, v in cfg.items()))
def test_pallas_kernel_configs_agree(cfg, config_case):
  """Blocks, chunk lengths, warps and prefetch are performance knobs only: values against the
  float64 oracle, every gradient against jax.grad of the reference."""
  x, names, want = config_case
  rng = np.random.default_rng(1)  # the weights of _loss_fns(x, True, ...)
  w = rng.standard_normal(x["u"].shape)
  wh = rng.standard_normal((x["u"].shape[0], *x["A"].shape))

  def run(u, delta, A, B, C, D, z, delta_bias):
    return scan_pallas.selective_scan(u, delta, A, B[:, :, None], C[:, :, None], D, z,
                                      delta_bias, True, **cfg)

  def loss(*args):
    y, h = run(**dict(zip(names, args)))
    return jnp.sum(y * w) + jnp.sum(h * wh)

  y, h = run(**{k: x[k] for k in names})
  y_want, h_want = scan_np(**x, delta_softplus=True)
  assert rel_err(y, y_want) < 2e-5 and rel_err(h, h_want) < 2e-5
  grads = jax.grad(loss, argnums=tuple(range(len(names))))(*[x[k] for k in names])
  for name, g, g_want in zip(names, grads, want):
    assert rel_err(g, g_want) < 1e-4, f"d{name}: {rel_err(g, g_want):.2e}"


def test_pallas_chunk_lengths_must_nest():
  x = make_case(1, 8, 8, 4, None)
  with pytest.raises(ValueError, match="multiple of bwd_chunk"):
    scan_pallas.selective_scan(x["u"], x["delta"], x["A"], x["B"][:, :, None],
                               x["C"][:, :, None], x["D"], None, None, True, fwd_chunk=6,
                               bwd_chunk=4)


def test_pallas_lowers_for_cuda():
  """No GPU needed: forward and backward kernels lower to Triton for CUDA, with the PTX .approx
  log2 and 1/x that interpret mode replaces by exact ops (benchmarks/gpu_check.sh checks their
  accuracy on a GPU)."""
  x = make_case(2, 37, 40, 8, 1, seed=2)
  names = [k for k in ARG_NAMES if x[k] is not None]

  def loss(*args):
    kw = dict(zip(names, args))
    y, h = scan_pallas.selective_scan(kw["u"], kw["delta"], kw["A"], kw["B"], kw["C"], kw["D"],
                                      kw["z"], kw["delta_bias"], True, interpret=False)
    return jnp.sum(y) + jnp.sum(h)

  exported = export.export(
      jax.jit(jax.grad(loss, argnums=tuple(range(len(names))))), platforms=["cuda"],
      disabled_checks=[export.DisabledSafetyCheck.custom_call("__gpu$xla.gpu.triton")])(
          *[jax.ShapeDtypeStruct(x[k].shape, x[k].dtype) for k in names])
  text = exported.mlir_module()
  assert text.count("__gpu$xla.gpu.triton") == 2
  for name in ("selective_scan_fwd", "selective_scan_bwd"):
    end = text.index(f'name = "{name}"')
    kernel = text[text.rindex('ir = "', 0, end):end]  # the kernel's Triton IR (bytecode)
    assert "lg2.approx.ftz.f32" in kernel and "rcp.approx.ftz.f32" in kernel, name


@pytest.mark.parametrize("change, message", [
    (dict(u=jnp.zeros((2, 3))), r"u: expected shape \(batch, length, channels\)"),
    (dict(delta=jnp.zeros((2, 5, 8))), r"delta: expected shape"),
    (dict(z=jnp.zeros((2, 4, 7))), r"z: expected shape"),
    (dict(A=jnp.zeros((7, 4))), r"A: expected shape \(channels, state\) = \(8, state\)"),
    (dict(A=jnp.zeros((8, 4), jnp.float16)), r"A: expected float32"),
    (dict(B=jnp.zeros((2, 4, 5))), r"B: expected shape"),
    (dict(C=jnp.zeros((2, 4, 3, 4))), r"C: expected shape .* groups dividing channels=8"),
    (dict(B=jnp.zeros((2, 4, 2, 4))), r"B and C: expected the same number of groups"),
    (dict(D=jnp.zeros((8,), jnp.float16)), r"D: expected float32 of shape \(channels,\)"),
    (dict(delta_bias=jnp.zeros((9,))), r"delta_bias: expected float32 of shape"),
])
def test_bad_arguments_name_the_argument(change, message):
  x = make_case(2, 4, 8, 4, None)
  with pytest.raises(ValueError, match=message):
    call({**x, **change}, "reference", True)


def test_unknown_impl():
  x = make_case(1, 2, 4, 2, None)
  with pytest.raises(ValueError, match="impl: expected one of"):
    call(x, "cuda", True)
