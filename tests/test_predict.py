"""predict: whole-slide expression maps from a saved probe, on slides whose truth is known."""

import json
import os
import subprocess
import sys

import anndata
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tifffile
from flax import nnx
from PIL import Image

from configs import eval_st
from configs import predict as predict_config
from mvhybrid_jax import checkpoints, models, predict
from mvhybrid_jax.data import synthetic
from mvhybrid_jax.eval import features, gene_expression, st
from mvhybrid_jax.eval import probes as probes_lib  # "probes" is a fixture here

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


TINY = {"name": "mvhybrid", "dim": 32, "depth": 2, "num_heads": 2}


def colour_backbone():
  """A tiny MV_Hybrid whose embedding is the tiles' colour statistics, set by hand: each patch
  embedding averages the three colours of each quadrant of its patch (plus a constant channel),
  and every block is zeroed, hence the identity. The synthetic genes follow tissue composition,
  which colour shows, so this backbone is informative by construction. (No backbone pretrained
  to a useful level fits in a test: 500 smoke pretraining steps give maps no better than random
  init, PCC 0.043 vs 0.048 on the synthetic slide.)"""
  model = models.create("mvhybrid", rngs=nnx.Rngs(0), dim=32, depth=2, num_heads=2)
  kernel = np.zeros((16, 16, 3, 32), np.float32)  # (kh, kw, in, out)
  for q, (ys, xs) in enumerate([(slice(0, 8), slice(0, 8)), (slice(0, 8), slice(8, 16)),
                                (slice(8, 16), slice(0, 8)), (slice(8, 16), slice(8, 16))]):
    for c in range(3):
      kernel[ys, xs, c, 3 * q + c] = 1 / 64
  model.patch_embed.kernel[...] = jnp.asarray(kernel)
  model.patch_embed.bias[...] = jnp.zeros(32).at[31].set(1.0)
  for block in model.blocks:
    nnx.update(block, jax.tree.map(jnp.zeros_like, nnx.state(block, nnx.Param)))
  return model


@pytest.fixture(scope="module")
def probes(tmp_path_factory):
  """eval.py's gene-expression task on the smoke spots: a probe per backbone (a random-init tiny
  MV_Hybrid, an exported one with other weights, and the colour backbone)."""
  root = tmp_path_factory.mktemp("predict")
  with pytest.MonkeyPatch.context() as mp:
    mp.setenv("MVHYBRID_DATA_DIR", str(root / "data"))
    c = eval_st.get_config("smoke")
    export, colour = str(root / "other_export"), str(root / "colour")
    checkpoints.save_backbone(export, models.create("mvhybrid", rngs=nnx.Rngs(5), dim=32, depth=2,
                                                    num_heads=2), TINY)
    checkpoints.save_backbone(colour, colour_backbone(), TINY)
    c.checkpoint, c.protocols = f"random,{export},{colour}", ("random",)
    results = st.run(c, str(root / "eval"))
  return dict(random=results["random mvhybrid"]["probe"], other=results["other_export"]["probe"],
              colour=results["colour"]["probe"], export=export, root=root)


def config(probe, **kw):
  c = predict_config.get_config()
  c.probe, c.batch_size = probe, 16
  c.update(kw)
  return c


def test_maps_of_the_synthetic_slide(probes, tmp_path):
  out = str(tmp_path / "maps")
  result = predict.run(config(probes["random"], genes="GENE003,GENE049"), out)
  assert sorted(os.listdir(out)) == ["maps", "predictions.h5ad", "summary.md",
                                     "synthetic_slide.png"]
  assert result["maps"] == [os.path.join(out, "maps", "GENE003.png"),
                            os.path.join(out, "maps", "GENE049.png")]
  for path in result["maps"]:
    assert open(path, "rb").read(4) == b"\x89PNG"
  summary = open(result["summary"]).read()
  assert "![GENE049](maps/GENE049.png)" in summary and "PCC with truth" in summary

  adata = anndata.read_h5ad(result["predictions.h5ad"])
  probe = probes_lib.load_probe(probes["random"])
  assert list(adata.var_names) == probe.genes
  assert adata.n_obs == result["tiles"] and adata.X.dtype == np.float32
  assert json.loads(adata.uns["probe"])["params_digest"] == probe.meta["params_digest"]
  np.testing.assert_allclose(adata.obsm["spatial"], adata.obs[["x", "y"]].to_numpy() + 32)

  # Tiles land on tissue: every tile is one of the slide's kept spots, and every spot of clear
  # tissue is found (spots mostly of background or fat are pale and may read as glass).
  slide = synthetic_truth_slide()
  image, kept = synthetic.slide_image(slide)
  spots = {((c + 1) * 64, (r + 1) * 64): k for k, (r, c) in zip(kept, slide.coords[kept])}
  corners = [tuple(xy) for xy in adata.obs[["x", "y"]].to_numpy()]
  pale = slide.composition[:, [synthetic.CLASSES.index(c) for c in ("BACK", "ADI")]].sum(1)
  assert set(corners) <= set(spots) and len(corners) >= 0.8 * len(spots)
  assert {xy for xy, k in spots.items() if pale[k] < 0.3} <= set(corners)
  np.testing.assert_array_equal(np.asarray(Image.open(os.path.join(out, "synthetic_slide.png"))),
                                image)

  # The oracle: the probe on the spots' own patches, embedded directly.
  model = models.create("mvhybrid", rngs=nnx.Rngs(0), dim=32, depth=2, num_heads=2,
                        dtype="float32")
  feats = features.extract(model, [slide.patches[spots[c]] for c in corners])
  np.testing.assert_allclose(adata.X, probe.predict(feats), rtol=1e-4, atol=1e-4)
  truth = np.log1p(np.stack([slide.counts[spots[c]] for c in corners]).astype(float))
  r = gene_expression.per_gene_pcc(truth, adata.X)
  assert result["truth_pcc"]["GENE049"] == pytest.approx(r[49])


def test_maps_correlate_with_the_truth_above_random_init(probes, tmp_path):
  """On the synthetic slide (a slide none of the probe's spots come from), the informative
  backbone's maps follow the true expression, clearly more than a random-init backbone's."""
  pcc = {}
  for name in ("colour", "random"):
    result = predict.run(config(probes[name]), str(tmp_path / name))
    pcc[name] = np.nanmean(list(result["truth_pcc"].values()))
  assert pcc["colour"] > 0.07 and pcc["colour"] > pcc["random"] + 0.03, pcc


def synthetic_truth_slide():
  """The slide predict.synthetic_slide renders for the smoke probe, rendered again here."""
  studies = synthetic.make_studies(4, 0)
  genes = synthetic.make_gene_model(50, seed=0)
  rng = np.random.default_rng(predict.SYNTHETIC_SEED)
  return synthetic.make_slide(rng, studies[0], genes, "synthetic", "synthetic",
                              predict.SYNTHETIC_GRID, 64)


def test_png_and_pyramidal_tiff_give_the_same_maps(probes, tmp_path):
  image, _ = synthetic.slide_image(synthetic_truth_slide())
  Image.fromarray(image).save(tmp_path / "slide.png")
  opts = dict(tile=(128, 128), photometric="rgb", compression="zlib")
  res = lambda m: dict(resolution=(1e4 / m, 1e4 / m), resolutionunit="CENTIMETER")
  with tifffile.TiffWriter(tmp_path / "slide.tif") as tif:
    tif.write(image, subifds=1, **opts, **res(0.5))
    tif.write(image[::2, ::2], subfiletype=1, **opts, **res(1.0))
  png = predict.run(config(probes["random"], slide=str(tmp_path / "slide.png"), slide_mpp=0.5),
                    str(tmp_path / "png"))
  tif = predict.run(config(probes["random"], slide=str(tmp_path / "slide.tif")),
                    str(tmp_path / "tif"))
  assert png["truth_pcc"] is None and png["genes"] == tif["genes"] and len(png["genes"]) == 8
  a = anndata.read_h5ad(png["predictions.h5ad"])
  b = anndata.read_h5ad(tif["predictions.h5ad"])
  np.testing.assert_array_equal(a.obs[["x", "y"]].to_numpy(), b.obs[["x", "y"]].to_numpy())
  np.testing.assert_allclose(a.X, b.X, rtol=1e-5, atol=1e-5)
  # the default genes are those whose predictions vary most over the slide
  variance = a.X.var(axis=0)
  assert sorted(variance[[a.var_names.get_loc(g) for g in png["genes"]]]) == sorted(
      np.sort(variance)[-8:])


def _assert_nothing_written(out):
  assert not os.path.exists(out)


@pytest.mark.parametrize("case, message", [
    ("missing_slide", "slide: .* does not exist"),
    ("not_a_slide", "cannot be opened as a whole-slide image"),
    ("png_without_mpp", "config.slide_mpp: .* does not record its microns per pixel"),
    ("other_weights", "has other weights"),
    ("other_backbone", "is a vit_12 backbone, but the probe was fitted on mvhybrid"),
    ("normalisation", "normalised with"),
    ("unknown_gene", r"config.genes: \['NOTAGENE'\] are not among the probe's 50 genes"),
    ("no_probe", "config.probe: required"),
    ("missing_probe", "probe: .* does not exist"),
])
def test_bad_input(probes, tmp_path, case, message):
  c = config(probes["random"])
  if case == "missing_slide":
    c.slide = str(tmp_path / "nowhere.svs")
  elif case == "not_a_slide":
    (tmp_path / "fake.svs").write_text("text")
    c.slide = str(tmp_path / "fake.svs")
  elif case == "png_without_mpp":
    Image.fromarray(np.full((256, 256, 3), 200, np.uint8)).save(tmp_path / "s.png")
    c.slide = str(tmp_path / "s.png")
  elif case == "other_weights":
    c.checkpoint = probes["export"]
  elif case == "other_backbone":
    vit = str(tmp_path / "vit")
    checkpoints.save_backbone(vit, models.create("vit_12", rngs=nnx.Rngs(0), dim=32, depth=2,
                                                 num_heads=2), {**TINY, "name": "vit_12"})
    c.checkpoint = vit
  elif case == "normalisation":
    probe = probes_lib.load_probe(probes["random"])
    probe.meta["normalisation"]["mean"] = [0.5, 0.5, 0.5]
    c.probe = str(tmp_path / "p.npz")
    probes_lib.save_probe(c.probe, probe)
  elif case == "unknown_gene":
    c.genes = "GENE001,NOTAGENE"
  elif case == "no_probe":
    c.probe = ""
  elif case == "missing_probe":
    c.probe = str(tmp_path / "none.npz")
  out = str(tmp_path / "out")
  with pytest.raises(ValueError, match=message):
    predict.run(c, out)
  _assert_nothing_written(out)


def test_the_other_probe_works_with_its_own_backbone(probes, tmp_path):
  """The exported backbone's probe records its checkpoint: no config.checkpoint needed."""
  result = predict.run(config(probes["other"], genes="GENE000"), str(tmp_path / "o"))
  assert result["label"] == "other_export" and result["tiles"] > 50


def test_command_line_error_is_one_line(tmp_path):
  run = subprocess.run([sys.executable, os.path.join(ROOT, "predict.py"),
                        "--config=configs/predict.py", f"--workdir={tmp_path / 'w'}",
                        f"--config.probe={tmp_path / 'none.npz'}"], cwd=ROOT, capture_output=True,
                       text=True, env={**os.environ, "PYTHONPATH": ROOT}, timeout=300)
  assert run.returncode != 0
  assert "FATAL: probe: " in run.stderr and "Traceback" not in run.stderr
