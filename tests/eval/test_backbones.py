"""The backbones an evaluation compares: "random" takes the architecture of its checkpoints."""

import ml_collections
from flax import nnx

from mvhybrid_jax import checkpoints, models
from mvhybrid_jax.eval import backbones


def export(path, **settings):
  name = settings.pop("name")
  model = models.create(name, rngs=nnx.Rngs(0), **settings)
  checkpoints.save_backbone(str(path), model, {"name": name, **settings})
  return str(path)


def test_random_takes_the_architecture_of_its_checkpoints(tmp_path):
  small = dict(name="vit_12", dim=16, depth=1, num_heads=2, dtype="float32")
  a, b = export(tmp_path / "a", **small), export(tmp_path / "b", **small)
  config = ml_collections.ConfigDict(dict(
      checkpoint=f"{a},random,{b}", seed=0,
      model=dict(name="mvhybrid", dim=32, depth=2, num_heads=2, dtype="float32")))
  out = {spec: (label, model, settings) for spec, label, model, settings
         in backbones.compared(config)}
  assert list(out) == [a, "random", b]
  label, model, settings = out["random"]
  assert label == "random vit_12" and settings == small
  assert models.count_params(model) == models.count_params(out[a][1])
  assert checkpoints.read_settings(a) == small
  # Different architectures among the checkpoints: random is config.model.
  c = export(tmp_path / "c", **{**small, "dim": 32})
  config.checkpoint = f"{a},{c},random"
  assert backbones.random_config(backbones.specs(config.checkpoint), config.model) == \
      config.model.to_dict()
