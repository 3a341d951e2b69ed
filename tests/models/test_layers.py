"""The building blocks against numpy implementations written from the spec (section 1)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mvhybrid_jax.models import pos_embed
from mvhybrid_jax.models.attention import Attention
from mvhybrid_jax.models.einfft import EinFFT
from mvhybrid_jax.models.mamba_vision import MambaVisionMixer, eigenvalue_init

RNG = np.random.default_rng(0)


def rel_err(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return np.max(np.abs(a - b)) / np.max(np.abs(b))


def depthwise_conv_np(x, w, bias=None):
  """PyTorch Conv1d(C, C, k, groups=C, padding="same") on (batch, tokens, C); w (C, 1, k).
  For an even k, "same" pads (k - 1) // 2 on the left and the rest on the right."""
  k = w.shape[-1]
  left = (k - 1) // 2
  xp = np.pad(x, [(0, 0), (left, k - 1 - left), (0, 0)])
  y = sum(xp[:, j:j + x.shape[1]] * w[:, 0, j] for j in range(k))
  return y if bias is None else y + bias


def silu(x):
  return x / (1 + np.exp(-x))


def scan_np(u, delta, A, B, C, D):
  h = np.zeros((u.shape[0], u.shape[2], A.shape[1]))
  y = np.zeros_like(u)
  for t in range(u.shape[1]):
    h = np.exp(delta[:, t, :, None] * A) * h + (delta[:, t] * u[:, t])[..., None] * B[:, t, None]
    y[:, t] = np.sum(h * C[:, t, None], -1)
  return y + D * u


def mixer_np(p, x, quirks=True):
  """MambaVisionMixer from the spec, steps 1-7, in float64."""
  lin = lambda x, name: x @ np.asarray(p[name]["kernel"], np.float64)
  xz = lin(x, "in_proj")
  half = xz.shape[-1] // 2
  xs, z = xz[..., :half], xz[..., half:]
  conv = lambda v, name: depthwise_conv_np(
      v, np.asarray(p[name]["kernel"], np.float64).transpose(2, 1, 0),
      None if quirks else np.asarray(p[name]["bias"], np.float64))
  xs, z = silu(conv(xs, "conv1d_x")), silu(conv(z, "conv1d_z"))
  dbl = lin(xs, "x_proj")
  r, n = p["dt_proj"]["kernel"].shape[0], p["A_log"].shape[1]
  dt, B, C = dbl[..., :r], dbl[..., r:r + n], dbl[..., r + n:]
  bias = np.asarray(p["dt_proj"]["bias"], np.float64)
  dt = dt @ np.asarray(p["dt_proj"]["kernel"], np.float64) + bias
  delta = np.logaddexp(0, dt + bias) if quirks else np.logaddexp(0, dt)  # the bias, twice
  A = -np.exp(np.asarray(p["A_log"], np.float64))
  y = scan_np(xs, delta, A, B, C, np.asarray(p["D"], np.float64))
  return lin(np.concatenate([y, z], -1), "out_proj")


def params_np(module):
  return jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(module, nnx.Param)))


@pytest.mark.parametrize("quirks", [True, False])
def test_mamba_vision_mixer_matches_numpy(quirks):
  mixer = MambaVisionMixer(32, d_state=8, release_quirks=quirks, scan_impl="reference",
                           rngs=nnx.Rngs(1))
  # Perturb the zero-initialised parameters so every term is exercised.
  mixer.dt_proj.bias[...] = jnp.asarray(RNG.standard_normal(32) * 0.5, jnp.float32)
  if not quirks:
    mixer.conv1d_x.bias[...] = jnp.asarray(RNG.standard_normal(32), jnp.float32)
  x = RNG.standard_normal((2, 13, 32)).astype(np.float32)
  got = mixer(jnp.asarray(x))
  want = mixer_np(params_np(mixer), x.astype(np.float64), quirks)
  assert rel_err(got, want) < 1e-4


def test_depthwise_conv_same_padding_is_one_left_two_right():
  mixer = MambaVisionMixer(16, rngs=nnx.Rngs(0))
  x = RNG.standard_normal((2, 9, 16)).astype(np.float32)
  w = np.asarray(mixer.conv1d_x.kernel[...]).transpose(2, 1, 0)  # (k, 1, C) -> (C, 1, k)
  got = mixer.conv1d_x(jnp.asarray(x))
  assert rel_err(got, depthwise_conv_np(x, w)) < 1e-5
  # Explicitly: output token 0 sees input tokens -1 (zero), 0, 1, 2.
  want0 = sum(x[:, j - 1] * w[:, 0, j] for j in range(1, 4))
  np.testing.assert_allclose(np.asarray(got)[:, 0], want0, rtol=1e-5, atol=1e-6)


def test_mixer_init_follows_the_release():
  mixer = MambaVisionMixer(384, rngs=nnx.Rngs(0))
  np.testing.assert_allclose(np.asarray(mixer.A_log[...]),
                             np.log(np.tile(np.arange(1, 17), (384, 1))), rtol=1e-6)
  np.testing.assert_array_equal(np.asarray(mixer.D[...]), np.ones(384))
  for lin in (mixer.in_proj, mixer.x_proj, mixer.dt_proj, mixer.out_proj):
    assert abs(float(jnp.std(lin.kernel[...])) - 0.02) < 0.002
  np.testing.assert_array_equal(np.asarray(mixer.dt_proj.bias[...]), np.zeros(384))
  assert mixer.conv1d_x.bias is None  # the release's conv has no bias
  # PyTorch's default conv init: U(+-1/sqrt(fan_in)), fan_in = kernel 4.
  w = np.asarray(mixer.conv1d_x.kernel[...])
  assert np.abs(w).max() <= 0.5 and abs(w.std() - 0.5 / np.sqrt(3)) < 0.02


def test_mixer_without_quirks_uses_mamba_dt_init():
  mixer = MambaVisionMixer(64, release_quirks=False, rngs=nnx.Rngs(0))
  dt = np.logaddexp(0, np.asarray(mixer.dt_proj.bias[...]))
  assert dt.min() >= 1e-4 - 1e-7 and dt.max() <= 0.1 + 1e-6
  assert mixer.conv1d_x.bias is not None


def test_eigenvalue_inits():
  key = jax.random.key(0)
  np.testing.assert_array_equal(np.asarray(eigenvalue_init("s4d_real", 3, 4, key)),
                                -np.tile([1.0, 2, 3, 4], (3, 1)))
  lin = np.asarray(eigenvalue_init("s4d_lin", 2, 4, key))
  np.testing.assert_allclose(lin, np.tile(-0.5 + 1j * np.pi * np.arange(4), (2, 1)), rtol=1e-6)
  rnd = np.asarray(eigenvalue_init("random_real", 64, 16, key))
  assert np.all(rnd < 0) and rnd.min() >= -16 - 1e-4 and rnd.max() <= -0.5 + 1e-6
  with pytest.raises(ValueError, match="a_init"):
    eigenvalue_init("hippo", 2, 4, key)


def test_complex_eigenvalues_run_through_the_mixer():
  mixer = MambaVisionMixer(16, d_state=4, a_init="s4d_lin", rngs=nnx.Rngs(0))
  np.testing.assert_allclose(np.asarray(mixer.A), np.tile(-0.5 + 1j * np.pi * np.arange(4),
                                                          (16, 1)), rtol=1e-5, atol=1e-5)
  x = jnp.asarray(RNG.standard_normal((1, 7, 16)), jnp.float32)
  y = mixer(x)  # "auto": never the real-valued pallas kernel
  assert y.shape == (1, 7, 16) and y.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(y)))
  xla = MambaVisionMixer(16, d_state=4, a_init="s4d_lin", scan_impl="xla", rngs=nnx.Rngs(0))
  np.testing.assert_allclose(np.asarray(xla(x)), np.asarray(y), rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="scan_impl"):
    MambaVisionMixer(16, a_init="s4d_lin", scan_impl="pallas", rngs=nnx.Rngs(0))


def einfft_np(p, x, blocks):
  b, m, d = x.shape
  h = np.fft.fft2(x.reshape(b, m, blocks, -1), axes=(1, 2), norm="ortho")
  w1 = p["complex_weight_1"][0] + 1j * p["complex_weight_1"][1]
  b1 = p["complex_bias_1"][0] + 1j * p["complex_bias_1"][1]
  w2 = p["complex_weight_2"][0] + 1j * p["complex_weight_2"][1]
  b2 = p["complex_bias_2"][0] + 1j * p["complex_bias_2"][1]
  o = np.zeros_like(h)
  for k in range(blocks):
    o[:, :, k] = h[:, :, k] @ w1[k] + b1[k]
  o = np.maximum(o.real, 0) + 1j * np.maximum(o.imag, 0)
  o2 = np.zeros_like(o)
  for k in range(blocks):
    o2[:, :, k] = o[:, :, k] @ w2[k] + b2[k]
  shrink = lambda v: np.where(np.abs(v) > 0.01, v - 0.01 * np.sign(v), 0.0)
  o2 = shrink(o2.real) + 1j * shrink(o2.imag)
  return np.fft.ifft2(o2, axes=(1, 2), norm="ortho").real.reshape(b, m, d)


# (dim, blocks, tokens): even and odd channels per block, tokens and blocks (the transforms
# pair channels and negate frequencies, which differ in each case)
EINFFT_CASES = [(48, 4, 10), (36, 4, 11), (30, 3, 7)]


def einfft_with_weights(dim, blocks):
  mod = EinFFT(dim, num_blocks=blocks, rngs=nnx.Rngs(0))
  d = dim // blocks
  # Larger weights than the 0.02 init so ReLU and softshrink both act on many entries.
  for name in ("complex_weight_1", "complex_weight_2"):
    getattr(mod, name)[...] = jnp.asarray(RNG.standard_normal((2, blocks, d, d)) * 0.3,
                                          jnp.float32)
  for name in ("complex_bias_1", "complex_bias_2"):
    getattr(mod, name)[...] = jnp.asarray(RNG.standard_normal((2, blocks, d)) * 0.1, jnp.float32)
  return mod


@pytest.mark.parametrize("dim,blocks,tokens", EINFFT_CASES)
def test_einfft_matches_numpy(dim, blocks, tokens):
  mod = einfft_with_weights(dim, blocks)
  x = RNG.standard_normal((2, tokens, dim)).astype(np.float32)
  want = einfft_np(jax.tree.map(lambda v: v.astype(np.float64), params_np(mod)),
                   x.astype(np.float64), blocks)
  forward = nnx.jit(lambda m, x: m(x))
  got = forward(mod, jnp.asarray(x))
  assert rel_err(got, want) < 1e-4
  assert forward(mod, jnp.asarray(x, jnp.bfloat16)).dtype == jnp.bfloat16


@pytest.mark.parametrize("dim,blocks,tokens", EINFFT_CASES)
def test_einfft_gradient_matches_numpy_differences(dim, blocks, tokens):
  """Directional derivatives of sum(w * EinFFT(x)) along random directions in x and in the
  first weight: jax.grad (through the packed transforms and the mirror's own VJP) against
  central differences of the float64 numpy EinFFT."""
  mod = einfft_with_weights(dim, blocks)
  x, w, vx = (RNG.standard_normal((2, tokens, dim)) for _ in range(3))
  vw = RNG.standard_normal(mod.complex_weight_1.shape)
  p = jax.tree.map(lambda v: v.astype(np.float64), params_np(mod))
  loss = lambda p, x: np.sum(w * einfft_np(p, x, blocks))
  shifted = lambda s: dict(p, complex_weight_1=p["complex_weight_1"] + s * vw)
  eps = 1e-6
  want_x = (loss(p, x + eps * vx) - loss(p, x - eps * vx)) / (2 * eps)
  want_w = (loss(shifted(eps), x) - loss(shifted(-eps), x)) / (2 * eps)
  graph, state = nnx.split(mod)
  g_state, g_x = jax.jit(jax.grad(lambda s, x: jnp.sum(w * nnx.merge(graph, s)(x)),
                                  argnums=(0, 1)))(state, jnp.asarray(x, jnp.float32))
  got_x = np.sum(np.asarray(g_x, np.float64) * vx)
  got_w = np.sum(np.asarray(g_state["complex_weight_1"][...], np.float64) * vw)
  assert abs(got_x - want_x) < 1e-4 * abs(want_x)
  assert abs(got_w - want_w) < 1e-4 * abs(want_w)


def test_attention_matches_numpy():
  mod = Attention(32, num_heads=4, rngs=nnx.Rngs(0))
  for lin in (mod.qkv, mod.proj):
    lin.bias[...] = jnp.asarray(RNG.standard_normal(lin.bias.shape) * 0.1, jnp.float32)
  x = RNG.standard_normal((2, 9, 32))
  p = jax.tree.map(lambda v: v.astype(np.float64), params_np(mod))
  qkv = (x @ p["qkv"]["kernel"] + p["qkv"]["bias"]).reshape(2, 9, 3, 4, 8)
  q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))  # (b, heads, t, hd)
  s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(8)
  a = np.exp(s - s.max(-1, keepdims=True))
  a /= a.sum(-1, keepdims=True)
  y = (a @ v).transpose(0, 2, 1, 3).reshape(2, 9, 32) @ p["proj"]["kernel"] + p["proj"]["bias"]
  assert rel_err(mod(jnp.asarray(x, jnp.float32)), y) < 1e-5


def test_bicubic_matches_torch_kernel():
  """Scale 2: output 5 reads source 5.5 / 2 - 0.5 = 2.25, taps 1..4 at distances 1.25, 0.25,
  0.75, 1.75. PyTorch's cubic convolution (A = -0.75), worked by hand:
  W(1.25) = ((A*1.25 - 5A)*1.25 + 8A)*1.25 - 4A = -0.10546875,
  W(0.25) = ((A+2)*0.25 - (A+3))*0.25^2 + 1 = 0.87890625, W(0.75) = 0.26171875,
  W(1.75) = -0.03515625."""
  m = pos_embed.bicubic_matrix(8, 16, 2.0)
  np.testing.assert_allclose(m[5, 1:5], [-0.10546875, 0.87890625, 0.26171875, -0.03515625])
  assert np.all(m[5, [0, 5, 6, 7]] == 0)
  # Output 0 reads source -0.25: taps -2..1 at distances 1.75, 0.75, 0.25, 1.25, the first
  # three clamped onto index 0.
  np.testing.assert_allclose(m[0, :3], [-0.03515625 + 0.26171875 + 0.87890625, -0.10546875, 0])
  np.testing.assert_allclose(m.sum(1), 1.0)
  np.testing.assert_allclose(pos_embed.bicubic_matrix(6, 6, 1.0), np.eye(6), atol=1e-12)


def test_pos_embed_interpolation():
  pe = jnp.asarray(RNG.standard_normal((1, 1 + 16 * 16, 8)), jnp.float32)
  assert pos_embed.interpolate(pe, 16, 16) is pe
  small = pos_embed.interpolate(pe, 7, 7)
  assert small.shape == (1, 50, 8)
  np.testing.assert_array_equal(np.asarray(small[:, 0]), np.asarray(pe[:, 0]))  # CLS untouched
  const = jnp.concatenate([pe[:, :1], jnp.full((1, 256, 8), 3.0)], axis=1)
  np.testing.assert_allclose(np.asarray(pos_embed.interpolate(const, 5, 9))[:, 1:], 3.0,
                             rtol=1e-5)
