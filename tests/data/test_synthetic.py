"""The procedural H&E cohort: determinism, study shift, and signal a probe can find."""

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mvhybrid_jax.data import synthetic as syn


@pytest.fixture(scope="module")
def cohort():
  return syn.make_cohort(n_studies=4, slides_per_study=2, grid=(8, 8), size=112, seed=0)


def test_deterministic_by_seed(cohort):
  slides, _ = cohort
  again, _ = syn.make_cohort(n_studies=4, slides_per_study=2, grid=(8, 8), size=112, seed=0)
  for a, b in zip(slides, again):
    np.testing.assert_array_equal(a.patches, b.patches)
    np.testing.assert_array_equal(a.counts, b.counts)
    assert (a.time, a.event) == (b.time, b.event)
  other = syn.make_studies(4, seed=1)
  assert other[0].h_od != syn.make_studies(4, seed=0)[0].h_od


def test_cohort_shapes(cohort):
  slides, genes = cohort
  assert len(slides) == 8 and len({s.study for s in slides}) == 4
  s = slides[0]
  assert s.patches.shape == (64, 112, 112, 3) and s.patches.dtype == np.uint8
  assert s.counts.shape == (64, 50) and s.counts.min() >= 0
  assert s.coords.shape == (64, 2) and s.coords.max() == 7
  np.testing.assert_allclose(s.composition.sum(1), 1.0, rtol=1e-6)
  assert len(genes.names) == 50 and all(sl.time > 0 for sl in slides)


def test_each_class_and_study_looks_different():
  studies = syn.make_studies(4, 0)
  means = np.array([[syn.class_patch(np.random.default_rng(k), k, st, 96).mean((0, 1))
                     for st in studies] for k in range(len(syn.CLASSES))])  # (class, study, 3)
  back, tum = syn.CLASSES.index("BACK"), syn.CLASSES.index("TUM")
  assert means[back].mean() > means[tum].mean() + 40  # background is pale, tumour dark
  # the same tissue under another study's stain and scanner has another colour
  assert np.abs(means[tum, 0] - means[tum, 1]).max() > 5


def _pcc(y_true, y_pred):
  keep = y_true.std(0) > 0
  return np.mean([np.corrcoef(y_true[:, g], y_pred[:, g])[0, 1] for g in np.flatnonzero(keep)])


def test_colour_histograms_predict_expression_less_across_studies(cohort):
  """Spec'd signal: colour-histogram features + ridge reach PCC > 0.3 on a random split, and
  less when the test study is unseen (leave-one-study-out)."""
  slides, _ = cohort
  hist = lambda p: np.concatenate([np.histogram(p[..., c], 16, (0, 256))[0] for c in range(3)])
  X = np.concatenate([[hist(p) for p in s.patches] for s in slides]).astype(np.float64)
  Y = np.log1p(np.concatenate([s.counts for s in slides]))
  study = np.concatenate([[s.study] * len(s.patches) for s in slides])
  probe = lambda: make_pipeline(StandardScaler(), Ridge(10.0))
  idx = np.random.default_rng(0).permutation(len(X))
  tr, te = idx[:410], idx[410:]
  random_pcc = _pcc(Y[te], probe().fit(X[tr], Y[tr]).predict(X[te]))
  loso = np.mean([_pcc(Y[study == s], probe().fit(X[study != s], Y[study != s])
                       .predict(X[study == s])) for s in np.unique(study)])
  assert random_pcc > 0.3
  assert loso < random_pcc - 0.1


def test_texture_genes_follow_fine_texture(cohort):
  slides, genes = cohort
  z = lambda v: (v - v.mean()) / v.std()  # the generator standardises texture within a slide
  tex = np.concatenate([z(np.array([syn.nuclear_texture(p) for p in s.patches])) for s in slides])
  y = np.log1p(np.concatenate([s.counts for s in slides]))
  texture_genes = np.flatnonzero(genes.texture)
  r = [abs(np.corrcoef(tex, y[:, g])[0, 1]) for g in texture_genes]
  assert np.mean(r) > 0.3
