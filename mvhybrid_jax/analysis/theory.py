"""Spectral bias, view 1: a diagonal SSM's transfer function and its total variation.

A diagonal SSM with eigenvalues a_j = x_j + i y_j has the transfer function
G(iw) = sum_j c_j b_j / (iw - a_j); the total variation of G over [B, inf) is at most
sum_j |c_j b_j| / (B - y_j) (Yu et al., ICLR 2025). Here for the inits of
models.mamba_vision.eigenvalue_init (analysis.probing reads the eigenvalues a checkpoint learned).
"""

from __future__ import annotations

import jax
import numpy as np
from scipy import integrate

from mvhybrid_jax.models import mamba_vision


def eigenvalues(kind: str, n: int = 16, seed: int = 0) -> np.ndarray:
  """(n,) complex128: one channel of the model's eigenvalue init (s4d_real, s4d_lin, random_real)."""
  a = mamba_vision.eigenvalue_init(kind, 1, n, jax.random.key(seed))[0]
  return np.asarray(a).astype(np.complex128)


def _bc(a, bc):
  return np.ones(a.shape, np.complex128) if bc is None else np.asarray(bc, np.complex128)


def transfer_function(a, w, bc=None) -> np.ndarray:
  """G(iw) = sum_j bc_j / (iw - a_j) at frequencies w; bc_j = c_j b_j (default 1)."""
  a = np.asarray(a, np.complex128)
  w = np.asarray(w, np.float64)
  return (_bc(a, bc) / (1j * w[..., None] - a)).sum(-1)


def _check_lower(a, lower):
  top = float(np.max(np.asarray(a).imag))
  if lower <= top:
    raise ValueError(f"lower: the bound needs B above every imaginary part ({top:.4g}), got {lower}")


def tv_bound(a, lower: float, bc=None) -> float:
  """Spec section 5's bound on the total variation of G over [lower, inf):
  sum_j |bc_j| / (lower - y_j)."""
  a = np.asarray(a, np.complex128)
  _check_lower(a, lower)
  return float((np.abs(_bc(a, bc)) / (lower - a.imag)).sum())


def total_variation(a, lower: float, bc=None) -> float:
  """int_lower^inf |dG/dw| dw by adaptive quadrature, dG/dw = -i sum_j bc_j / (iw - a_j)^2."""
  a = np.asarray(a, np.complex128)
  bc = _bc(a, bc)
  speed = lambda w: abs((bc / (1j * w - a) ** 2).sum())
  # The integrand's structure sits within a few |x_j| of the y_j: integrate that part finely.
  split = max(lower, float(a.imag.max())) + 50.0 * (float(np.abs(a.real).max()) + 1.0)
  peaks = [y for y in np.unique(a.imag) if lower < y < split]
  head = integrate.quad(speed, lower, split, points=peaks or None, limit=500)[0]
  return head + integrate.quad(speed, split, np.inf, limit=200)[0]


def theory(kinds=mamba_vision.A_INITS, n: int = 16, n_lower: int = 24) -> dict:
  """Per init: eigenvalues, |G(iw)| on a log grid, and the numerical TV against the bound for
  lower limits B from just above the largest imaginary part."""
  out = {}
  w = np.logspace(-2, 3, 200)
  for kind in kinds:
    a = eigenvalues(kind, n)
    top = max(float(a.imag.max()), 0.0)
    lower = top + np.logspace(-1, 3, n_lower)
    out[kind] = dict(eigenvalues=[[z.real, z.imag] for z in a.tolist()], w=w.tolist(),
                     gain=np.abs(transfer_function(a, w)).tolist(), lower=lower.tolist(),
                     tv=[total_variation(a, b) for b in lower],
                     bound=[tv_bound(a, b) for b in lower])
  return out
