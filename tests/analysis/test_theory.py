"""analysis.theory against closed forms and numerical integration."""

import numpy as np
import pytest

from mvhybrid_jax.analysis import theory

# --- theory ----------------------------------------------------------------------------------


def test_one_negative_real_eigenvalue_is_a_monotone_low_pass():
  """G(iw) = cb / (iw + x): |G| = |cb| / sqrt(w^2 + x^2), falling with w."""
  x, cb = 2.5, 0.7 - 0.3j
  w = np.linspace(0, 200, 4001)
  g = theory.transfer_function([-x], w, bc=[cb])
  np.testing.assert_allclose(np.abs(g), abs(cb) / np.sqrt(w ** 2 + x ** 2), rtol=1e-12)
  assert np.all(np.diff(np.abs(g)) < 0)


@pytest.mark.parametrize("x, y", [(-0.1, 5.0), (-0.3, 20.0)])
def test_a_complex_pair_peaks_near_its_imaginary_part(x, y):
  a = np.array([x + 1j * y, x - 1j * y])
  w = np.linspace(0, 2 * y, 200001)
  peak = w[np.argmax(np.abs(theory.transfer_function(a, w)))]
  assert abs(peak - y) < abs(x)
  assert np.abs(theory.transfer_function(a, [y]))[0] > 10 * np.abs(
      theory.transfer_function(a, [0.0]))[0]


def _tv_by_trapezoid(a, lower, bc):
  """An independent total variation: |dG/dw| by central differences of G on a fine grid up to a
  large W, plus the tail beyond W, where |dG/dw| ~ |sum bc| / w^2."""
  w = lower + np.concatenate([np.linspace(0, 200, 400001)[:-1], np.geomspace(200, 1e7, 200001)])
  g = theory.transfer_function(a, w, bc)
  speed = np.abs(np.gradient(g, w))
  return np.trapezoid(speed, w) + abs(np.sum(bc)) / w[-1]


@pytest.mark.parametrize("kind", ["s4d_real", "s4d_lin", "random_real", "mixed"])
def test_total_variation_and_its_bound(kind):
  rng = np.random.default_rng(0)
  if kind == "mixed":
    a = -rng.uniform(0.2, 3.0, 6) + 1j * rng.uniform(-5, 5, 6)
  else:
    a = theory.eigenvalues(kind, 8)
  bc = rng.normal(size=len(a)) + 1j * rng.normal(size=len(a))
  top = max(a.imag.max(), 0.0)
  for lower in top + np.array([0.5, 3.0, 40.0]):
    tv = theory.total_variation(a, lower, bc)
    np.testing.assert_allclose(tv, _tv_by_trapezoid(a, lower, bc), rtol=2e-3)
    assert tv <= theory.tv_bound(a, lower, bc) * (1 + 1e-9)


def test_total_variation_of_one_real_eigenvalue_is_in_closed_form():
  """int_B^inf |cb| / (w^2 + x^2) dw = |cb| (pi/2 - arctan(B/x)) / x, and the bound is |cb|/B."""
  x, cb = 3.0, 2.0
  for lower in (0.1, 1.0, 30.0):
    want = cb * (np.pi / 2 - np.arctan(lower / x)) / x
    np.testing.assert_allclose(theory.total_variation([-x], lower, [cb]), want, rtol=1e-8)
    assert theory.tv_bound([-x], lower, [cb]) == pytest.approx(cb / lower)


def test_the_bound_needs_lower_above_the_imaginary_parts():
  with pytest.raises(ValueError, match="lower"):
    theory.tv_bound(theory.eigenvalues("s4d_lin", 4), 1.0)


def test_eigenvalues_follow_the_inits():
  np.testing.assert_array_equal(theory.eigenvalues("s4d_real", 4), [-1, -2, -3, -4])
  np.testing.assert_allclose(theory.eigenvalues("s4d_lin", 3),
                             [-0.5, -0.5 + 1j * np.pi, -0.5 + 2j * np.pi], rtol=1e-6)
