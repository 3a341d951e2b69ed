"""python -m mvhybrid_jax.interop.convert, both ways."""

import numpy as np
import pytest
import torch
from flax import nnx

from mvhybrid_jax import checkpoints, interop, models
from mvhybrid_jax.interop import convert


def test_pytorch_to_jax_and_back(tmp_path, capsys):
  model = models.create("mvhybrid", rngs=nnx.Rngs(5), dim=64, depth=2, num_heads=2)
  sd = interop.export_state_dict(model)
  pth = str(tmp_path / "release.pth")
  torch.save({"model": {f"module.teacher.backbone.{k}": torch.from_numpy(v.copy())
                        for k, v in sd.items()}}, pth)
  export = str(tmp_path / "jax")
  convert.main([pth, export, "--arch", "mvhybrid", "--model.num_heads=2"])
  assert "wrote mvhybrid" in capsys.readouterr().out
  loaded, settings = checkpoints.load_backbone(export)
  assert settings["name"] == "mvhybrid" and settings["dim"] == 64 and settings["num_heads"] == 2
  images = np.random.default_rng(0).standard_normal((2, 32, 32, 3)).astype(np.float32)
  model.eval()
  embed = nnx.jit(lambda m, x: m.embed(x))
  np.testing.assert_allclose(np.asarray(embed(loaded, images)), np.asarray(embed(model, images)),
                             rtol=1e-6, atol=1e-6)
  out = str(tmp_path / "back.safetensors")
  convert.main([export, out])
  back = interop.load(out)
  assert sorted(back) == sorted(sd) and all(np.array_equal(back[k], sd[k]) for k in sd)


def test_errors(tmp_path):
  with pytest.raises(SystemExit):
    convert.main([str(tmp_path / "x.pth"), str(tmp_path / "out")])  # no --arch
  with pytest.raises(ValueError, match="no such file"):
    convert.main([str(tmp_path / "x.pth"), str(tmp_path / "out"), "--arch", "vit_12"])


def test_model_settings_are_typed_flags():
  """--model.KEY=VALUE parses each setting to its default's type (oracle: models.settings)."""
  f, source, target = convert.parse(["convert", "in.pth", "out", "--arch", "vit_12",
                                     "--model.num_heads=12", "--model.release_quirks=False",
                                     "--model.mlp_ratio=2", "--model.scan_impl=xla"])
  assert (source, target) == ("in.pth", "out")
  assert models.given(f.model) == dict(num_heads=12, release_quirks=False, mlp_ratio=2.0,
                                       scan_impl="xla")
  assert set(convert.model_settings()) <= set(models.settings("mvhybrid")) - {"name"}


@pytest.mark.parametrize("argv, message", [
    (["a", "b", "--model.bogus=1"], "--model.bogus: not a setting"),
    (["a", "b", "--model.num_heads=six"], "num_heads"),
    (["a", "b", "c"], "expected IN OUT"),
    (["a", "b", "--arch=vit_99"], "vit_99"),
])
def test_bad_flags(argv, message):
  with pytest.raises(SystemExit, match=message):
    convert.parse(["convert", *argv])
