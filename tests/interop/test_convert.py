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
  convert.main([pth, export, "--arch", "mvhybrid", "--set", "num_heads=2"])
  assert "wrote mvhybrid" in capsys.readouterr().out
  loaded, settings = checkpoints.load_backbone(export)
  assert settings["name"] == "mvhybrid" and settings["dim"] == 64 and settings["num_heads"] == 2
  images = np.random.default_rng(0).standard_normal((2, 32, 32, 3)).astype(np.float32)
  model.eval()
  np.testing.assert_allclose(np.asarray(loaded.embed(images)), np.asarray(model.embed(images)),
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
