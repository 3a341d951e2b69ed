"""configs/pretrain.py: one recipe, any backbone, the registry's sizes; the *_crc names."""

import importlib

import pytest

from configs import pretrain
from mvhybrid_jax import models

# The settings the six pretraining configs spelled out before they left sizes to the registry
# (spec sections 1-3 and docs/backbones.md): the networks must stay these.
PAPER = {
    "mvhybrid": dict(dim=384, depth=24, num_heads=6, d_state=16, drop_path_rate=0.0),
    "vit_12": dict(dim=384, depth=12, num_heads=6, drop_path_rate=0.3),
    "vit_24": dict(dim=384, depth=24, num_heads=6, drop_path_rate=0.3),
    "vim_einfft": dict(dim=384, depth=24, num_heads=6, d_state=16, drop_path_rate=0.0),
    "hydra_einfft": dict(dim=384, depth=24, num_heads=6, d_state=64, head_dim=64, chunk_size=64,
                         drop_path_rate=0.0),
    "hydra_hybrid": dict(dim=384, depth=24, num_heads=6, d_state=64, head_dim=64, chunk_size=64,
                         drop_path_rate=0.0),
}


def test_every_registered_backbone_and_only_those():
  assert sorted(pretrain.BACKBONES) == models.names() == sorted(PAPER)


@pytest.mark.parametrize("name", sorted(PAPER))
def test_the_paper_networks(name):
  resolved = models.resolve(pretrain.get_config(name).model)
  assert {k: resolved[k] for k in PAPER[name]} == PAPER[name]
  assert resolved["dtype"] == "bfloat16" and resolved["patch_size"] == 16
  small = models.resolve(pretrain.get_config(f"{name},smoke").model)
  assert (small["dim"], small["depth"], small["num_heads"], small["dtype"]) == (
      32, 2, 2, "float32")
  if name.startswith("hydra"):
    assert (small["d_state"], small["head_dim"]) == (16, 32)
  assert models.resolve(pretrain.get_config(f"{name},demo").model)["patch_size"] == 8


@pytest.mark.parametrize("name", sorted(PAPER))
def test_the_crc_configs_are_pretrain_under_their_names(name):
  crc = importlib.import_module(f"configs.{name}_crc")
  for variant in (None, "smoke", "demo"):
    arg = name + (f",{variant}" if variant else "")
    assert crc.get_config(variant).to_dict() == pretrain.get_config(arg).to_dict()


def test_bad_arguments():
  with pytest.raises(ValueError, match=r"expected BACKBONE\[,VARIANT\] with BACKBONE one of "
                                       r"\['mvhybrid', .*got 'vit12'"):
    pretrain.get_config("vit12,smoke")
  with pytest.raises(ValueError, match="expected BACKBONE"):
    pretrain.get_config(None)
  with pytest.raises(ValueError, match="config variant: expected '', 'smoke' or 'demo', got 'x'"):
    pretrain.get_config("vit_12,x")
