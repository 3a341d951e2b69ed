"""DINO, iBOT, KoLeo and centring against numpy implementations written from DINOv2's recipe."""

import jax.numpy as jnp
import numpy as np

from mvhybrid_jax.losses import centering, dino, ibot, koleo

RNG = np.random.default_rng(0)


def log_softmax_np(x):
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def sinkhorn_np(logits, temp, iters):
  q = np.exp(logits / temp).T
  n_protos, n = q.shape
  q /= q.sum()
  for _ in range(iters):
    q /= q.sum(1, keepdims=True)
    q /= n_protos
    q /= q.sum(0, keepdims=True)
    q /= n
  return (q * n).T


def test_sinkhorn_knopp_matches_numpy_and_balances():
  logits = RNG.standard_normal((32, 16)) * 3
  got = np.asarray(centering.sinkhorn_knopp(jnp.asarray(logits, jnp.float32), 0.5, 3))
  np.testing.assert_allclose(got, sinkhorn_np(logits, 0.5, 3), rtol=1e-4, atol=1e-7)
  np.testing.assert_allclose(got.sum(1), 1.0, rtol=1e-5)  # each sample an assignment
  many = np.asarray(centering.sinkhorn_knopp(jnp.asarray(logits, jnp.float32), 0.5, 50))
  np.testing.assert_allclose(many.sum(0), 32 / 16, rtol=1e-3)  # prototypes used evenly


def test_sinkhorn_weights_equal_dropping_the_rows():
  logits = RNG.standard_normal((20, 8))
  w = np.zeros(20)
  w[:13] = 1
  got = np.asarray(centering.sinkhorn_knopp(jnp.asarray(logits, jnp.float32), 0.1, 3,
                                            jnp.asarray(w, jnp.float32)))
  np.testing.assert_allclose(got[:13], sinkhorn_np(logits[:13], 0.1, 3), rtol=1e-4, atol=1e-7)
  assert np.all(got[13:] == 0)


def test_softmax_centering():
  logits, center = RNG.standard_normal((5, 7)), RNG.standard_normal(7)
  got = centering.softmax_center(jnp.asarray(logits), jnp.asarray(center), 0.04)
  np.testing.assert_allclose(got, np.exp(log_softmax_np((logits - center) / 0.04)), rtol=1e-4,
                             atol=1e-30)  # float32 underflow below ~1e-38
  new = centering.update_center(jnp.asarray(center), jnp.asarray(logits), 0.9)
  np.testing.assert_allclose(new, 0.9 * center + 0.1 * logits.mean(0), rtol=1e-5)
  keep = np.array([1.0, 0.0, 1.0, 1.0, 0.0])  # padded rows of a masked-patch buffer
  new = centering.update_center(jnp.asarray(center), jnp.asarray(logits), 0.9, jnp.asarray(keep))
  np.testing.assert_allclose(new, 0.9 * center + 0.1 * logits[keep > 0].mean(0), rtol=1e-5)


def test_dino_loss_counts_cross_view_pairs():
  n_global, n_local, b, k = 2, 3, 4, 10
  sg = RNG.standard_normal((n_global, b, k))
  sl = RNG.standard_normal((n_local, b, k))
  tg = np.exp(log_softmax_np(RNG.standard_normal((n_global, b, k))))
  ce = lambda s, t: -np.mean(np.sum(t * log_softmax_np(s / 0.1), -1))
  want = sum(ce(sl[s], tg[t]) for t in range(2) for s in range(3))
  want += ce(sg[0], tg[1]) + ce(sg[1], tg[0])  # never a crop against itself
  want /= 2 * 1 + 3 * 2
  got = dino.dino_loss(jnp.asarray(sg), jnp.asarray(sl), jnp.asarray(tg), student_temp=0.1)
  np.testing.assert_allclose(float(got), want, rtol=1e-5)


def test_ibot_loss_weights_each_image_by_its_masked_patches():
  s = RNG.standard_normal((4, 6, 5))
  t = np.exp(log_softmax_np(RNG.standard_normal((4, 6, 5))))
  masks = np.zeros((4, 6), bool)
  masks[0, :2] = True
  masks[2, 1:6] = True  # images 1 and 3 unmasked
  per_patch = -np.sum(t * log_softmax_np(s / 0.1), -1)
  want = (per_patch[0, :2].mean() + per_patch[2, 1:6].mean()) / 4
  got = ibot.ibot_loss(jnp.asarray(s), jnp.asarray(t), jnp.asarray(masks), student_temp=0.1)
  np.testing.assert_allclose(float(got), want, rtol=1e-5)


def test_koleo_matches_numpy_and_rewards_spread():
  x = RNG.standard_normal((16, 8))
  xn = x / np.linalg.norm(x, axis=1, keepdims=True)
  d = np.linalg.norm(xn[:, None] - xn[None], axis=-1) + np.eye(16) * 10
  want = -np.mean(np.log(d.min(1) + 1e-8))
  np.testing.assert_allclose(float(koleo.koleo_loss(jnp.asarray(x, jnp.float32))), want,
                             rtol=1e-4)
  clustered = np.repeat(x[:4], 4, axis=0) + 1e-3 * RNG.standard_normal((16, 8))
  assert float(koleo.koleo_loss(jnp.asarray(clustered, jnp.float32))) > want + 3


def test_koleo_per_device_groups_equal_a_loop_over_chunks():
  x = RNG.standard_normal((24, 8))
  chunks = [float(koleo.koleo_loss(jnp.asarray(c, jnp.float32))) for c in np.split(x, 4)]
  got = float(koleo.koleo_loss(jnp.asarray(x, jnp.float32), groups=4))
  np.testing.assert_allclose(got, np.mean(chunks), rtol=1e-5)
  assert abs(got - float(koleo.koleo_loss(jnp.asarray(x, jnp.float32)))) > 1e-3  # not global
