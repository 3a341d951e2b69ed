"""HEST's probe against its closed form; saved probes predict as the fitted ones; load errors."""

import numpy as np
import pytest

from mvhybrid_jax.eval import probes


def test_probe_is_hest_ridge_in_closed_form():
  """No PCA: standardise, then W = (Z'Z + alpha I)^-1 Z'y, no intercept, alpha = 100 / (f g)."""
  rng = np.random.default_rng(0)
  x, y = rng.standard_normal((120, 20)), rng.standard_normal((120, 5))
  probe = probes.Probe(pca=None).fit(x[:100], y[:100])
  assert probe.alpha_ == pytest.approx(100 / (20 * 5))
  mu, sd = x[:100].mean(0), x[:100].std(0)
  z = (x[:100] - mu) / sd
  w = np.linalg.solve(z.T @ z + probe.alpha_ * np.eye(20), z.T @ y[:100])
  # lsqr is iterative (scikit-learn's tol 1e-4, as HEST runs it): agreement to ~1e-3.
  got, want = probe.predict(x[100:]), ((x[100:] - mu) / sd) @ w
  np.testing.assert_allclose(got, want, atol=3e-3)
  w10 = np.linalg.solve(z.T @ z + 10 * probe.alpha_ * np.eye(20), z.T @ y[:100])
  assert np.abs(got - ((x[100:] - mu) / sd) @ w10).max() > 1e-2  # the alpha is pinned down
  # With PCA the rule uses the probe's input width: min(256, spots, features) components.
  assert probes.Probe().fit(x[:100], y[:100]).alpha_ == pytest.approx(100 / (20 * 5))
  wide = rng.standard_normal((60, 300))
  assert probes.Probe().fit(wide, y[:60]).alpha_ == pytest.approx(100 / (60 * 5))
  assert probes.Probe(pca=None, alpha=0.5).fit(x, y).alpha_ == 0.5


@pytest.mark.parametrize("pca", [8, None])
def test_saved_probe_predicts_as_the_fitted_one(tmp_path, pca):
  """The portable arrays reproduce sklearn's pipeline; the training mean as intercept shifts
  every prediction by it and nothing else."""
  rng = np.random.default_rng(7)
  x, y = rng.normal(size=(60, 12)), rng.normal(2.0, 1.0, size=(60, 4))
  probe = probes.Probe(pca=pca).fit(x, y)
  genes = ["A", "B", "C", "D"]
  path = str(tmp_path / "p.npz")
  probes.save_probe(path, probes.export_probe(probe, genes, {"label": "x", "tile": 64}))
  loaded = probes.load_probe(path)
  assert loaded.genes == genes and loaded.meta == {"format": 1, "label": "x", "tile": 64}
  test = rng.normal(size=(9, 12))
  np.testing.assert_allclose(loaded.predict(test), probe.predict(test), atol=1e-12)
  shifted = probes.export_probe(probe, genes, {}, intercept=y.mean(0))
  np.testing.assert_allclose(shifted.predict(test), probe.predict(test) + y.mean(0), atol=1e-12)
  np.testing.assert_allclose(shifted.predict(x).mean(0), y.mean(0), atol=1e-8)  # centred inputs
  assert not list(tmp_path.glob("*.tmp"))


def test_load_probe_errors(tmp_path):
  with pytest.raises(ValueError, match="probe: .* does not exist"):
    probes.load_probe(str(tmp_path / "none.npz"))
  (tmp_path / "text.npz").write_text("not a probe")
  with pytest.raises(ValueError, match="is not a probe saved by eval.py"):
    probes.load_probe(str(tmp_path / "text.npz"))
  np.savez(tmp_path / "other.npz", weights=np.ones(3))
  with pytest.raises(ValueError, match=r"lacks \['mean'"):
    probes.load_probe(str(tmp_path / "other.npz"))
  np.savez(tmp_path / "pickled.npz", mean=np.array([{"a": 1}], dtype=object))
  with pytest.raises(ValueError, match="is not a probe|lacks"):
    probes.load_probe(str(tmp_path / "pickled.npz"))
