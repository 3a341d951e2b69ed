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


def test_evaluation_configs_take_model_sizes_from_the_command_line():
  """--config.model.dim etc. on any evaluation config (before: "no key" without :smoke); sizes
  left unset are the registry's defaults for the name."""
  from absl import flags
  from ml_collections import config_flags
  import configs.eval_st
  argv = ["eval.py", f"--config={configs.eval_st.__file__}", "--config.model.name=vit_12",
          "--config.model.dim=16", "--config.model.num_heads=2", "--config.model.depth=1"]
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "", flag_values=fv, lock_config=True,
                                  sys_argv=argv)
  fv(argv)
  label, model, settings = backbones.load("random", fv.config.model)
  assert label == "random vit_12"
  assert settings == dict(name="vit_12", dtype="float32", dim=16, num_heads=2, depth=1)
  want = models.create("vit_12", rngs=nnx.Rngs(0), dim=16, num_heads=2, depth=1)
  assert models.count_params(model) == models.count_params(want)
  assert model.patch_embed.kernel.shape == want.patch_embed.kernel.shape == (16, 16, 3, 16)
