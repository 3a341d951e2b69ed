"""analysis.spectral: checkpoints in, figures and numbers out, and its errors."""

import json

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from PIL import Image

from mvhybrid_jax import checkpoints, models
from mvhybrid_jax.analysis import frequency, probing, spectral
from mvhybrid_jax.models import mamba_vision

# --- checkpoints and the command line --------------------------------------------------------


def test_learned_eigenvalues_are_read_from_a_checkpoint(tmp_path):
  model = models.create("mvhybrid", rngs=nnx.Rngs(0), depth=2, dim=16, num_heads=2)
  a_log = np.log(np.random.default_rng(6).uniform(0.05, 30.0, model.blocks[0].mixer.A_log.shape))
  model.blocks[0].mixer.A_log[...] = jnp.asarray(a_log, jnp.float32)
  checkpoints.save_backbone(str(tmp_path / "export"), model,
                            dict(name="mvhybrid", depth=2, dim=16, num_heads=2))
  loaded = spectral.backbones(str(tmp_path / "export"), "mvhybrid", {}, ["s4d_real"])
  (label, m), = loaded.items()
  (row,) = probing.eigenvalue_summary(m)
  assert row["layer"] == 0 and row["param"].endswith("A_log")
  np.testing.assert_allclose(row["real"], [-np.exp(a_log).max(), -np.exp(a_log).min()], rtol=1e-5)
  assert row["tv_bound"]["10"] == pytest.approx(a_log.shape[-1] / 10.0)  # bc = 1, y = 0: N / B


def test_cli_writes_figures_and_numbers(tmp_path, capsys):
  out = tmp_path / "spectral"
  tiles = tmp_path / "tiles"
  tiles.mkdir()
  for i, patch in enumerate(probing.synthetic_patches(3, 96, seed=1)):
    Image.fromarray(patch).save(tiles / f"{i}.png")
  spectral.main(["--smoke", "--out", str(out), "--config.a_inits=s4d_real,s4d_lin",
                 "--config.model.depth=2", "--config.model.dim=16", f"--config.images={tiles}"])
  for name in ("theory.png", "mixers.png", "features.png", "experiment.png", "spectral.json"):
    assert (out / name).stat().st_size > 0
  assert not list(out.glob("*.tmp"))
  results = json.loads((out / "spectral.json").read_text())
  assert results["feature_images"] == str(tiles)
  assert set(results["backbones"]) == {"random mvhybrid (s4d_real)", "random mvhybrid (s4d_lin)"}
  r = results["backbones"]["random mvhybrid (s4d_lin)"]
  assert len(r["mixers"]) == 2 and len(r["features"]["delta"]) == 3
  assert r["eigenvalues"][0]["imag"][1] > 3  # s4d_lin: imaginary parts up to 15 pi
  assert set(r["experiment"]["pcc"]) == set(frequency.BANDS)
  assert "| random mvhybrid (s4d_real) |" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--config.model.bogus=2"], "--config.model.bogus=2: the config has no key"),
    (["--config.a_inits=s4d_real,bogus"], "config.a_inits"),
    (["--checkpoint", "/nonexistent/run"], "config.checkpoint"),
])
def test_cli_bad_input(tmp_path, argv, message):
  with pytest.raises(SystemExit, match=message):
    spectral.main(["--smoke", "--out", str(tmp_path / "out"), *argv])
  assert not (tmp_path / "out").exists()


def test_cli_config_is_configs_spectral_with_its_overrides(tmp_path):
  """--smoke and --checkpoint are the config's :smoke variant and config.checkpoint; any other
  setting is --config.KEY (oracle: configs/spectral.py itself)."""
  from configs import spectral as spectral_config
  expected = spectral_config.get_config("smoke")
  expected.update(tokens=8, checkpoint="a,random")
  expected.model.name = "vit_12"
  for argv in (["--smoke", "--checkpoint=a,random"],
               ["--config=configs/spectral.py:smoke", "--config.checkpoint=a,random"]):
    config, out = spectral.parse(["spectral", *argv, "--config.tokens=8",
                                  "--config.model.name=vit_12", f"--out={tmp_path}"])
    assert config.to_dict() == expected.to_dict() and out == str(tmp_path)
  config, _ = spectral.parse(["spectral", f"--out={tmp_path}"])
  assert config.to_dict() == spectral_config.get_config().to_dict()
  assert config.a_inits.split(",") == list(mamba_vision.A_INITS)


@pytest.mark.parametrize("argv, message", [
    (["--smoke", "--config=configs/spectral.py"], "--smoke is short for"),
    (["--smoke", "--bogus"], "Unknown command line flag 'bogus'"),
    (["--smoke", "extra"], "unexpected arguments"),
    (["--smoke"], "--out: expected"),
])
def test_cli_bad_flags(argv, message):
  with pytest.raises(SystemExit, match=message):
    spectral.parse(["spectral", *argv])
