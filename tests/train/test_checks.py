"""Config values out of range are refused by key before anything is built."""

import pytest

from configs import mvhybrid_crc, vit_12_crc
from mvhybrid_jax.train import checks

CASES = [  # (key, bad value, expected words in the error)
    ("epochs", 0, "integer >= 1"), ("steps_per_epoch", -1, "integer >= 1"),
    ("batch_size", 0, "integer >= 1"), ("batch_size", -8, "integer >= 1"),
    ("log_every", 0, "integer >= 1"), ("checkpoint_every", 0, "integer >= 1"),
    ("keep_checkpoints", 0, "integer >= 1"), ("heads.prototypes", 0, "integer >= 1"),
    ("heads.hidden", -1, "integer >= 1"), ("crops.global_size", 0, "integer >= 1"),
    ("crops.n_local", -1, ">= 0"), ("data.num_workers", -1, ">= 0"),
    ("warmup_epochs", -1, ">= 0"), ("final_lr", -1e-6, ">= 0"), ("koleo_weight", -0.1, ">= 0"),
    ("weight_decay", (0.04, -0.4), ">= 0"),
    ("base_lr", 0.0, "> 0"), ("base_lr", -0.002, "> 0"), ("base_lr", float("inf"), "finite"),
    ("base_lr", float("nan"), "finite"),
    ("student_temp", 0.0, "> 0"), ("teacher_temp", (0.0, 0.06), "> 0"), ("clip", -3.0, "> 0"),
    ("teacher_momentum", (0.992, 1.5), "<= 1.0"), ("center_momentum", 1.0, "< 1.0"),
    ("layer_decay", 0.0, "> 0"), ("layer_decay", 1.5, "<= 1.0"), ("data.max_skipped_fraction", -0.1, "0.0 <="),
    ("data.max_skipped_fraction", 2.0, "<= 1.0"), ("model.drop_path_rate", 1.0, "< 1.0"),
    ("model.dim", 0, "integer >= 1"), ("model.depth", -2, "integer >= 1"),
    ("model.d_state", 0, "integer >= 1"), ("model.num_heads", 0, "integer >= 1"),
    ("model.dim", 33, "must divide into"), ("warmup_epochs", 2, "warmup_epochs < epochs"),
    ("crops.global_size", 60, "not a multiple of the patch size 16"),
    ("crops.local_size", 40, "not a multiple of the patch size 16"),
]


def _set(config, key, value):
  *parents, last = key.split(".")
  node = config
  for part in parents:
    node = node[part]
  with node.ignore_type():
    node[last] = value


@pytest.mark.parametrize("key,value,words", CASES, ids=[f"{k}={v}" for k, v, _ in CASES])
def test_each_key_out_of_range_is_named(key, value, words):
  config = mvhybrid_crc.get_config("smoke")
  checks.check(config)  # the variants themselves pass
  _set(config, key, value)
  with pytest.raises(ValueError) as e:
    checks.check(config)
  message = str(e.value)
  assert message.startswith(f"config.{key}: ") and words in message, message


def test_every_shipped_variant_passes():
  for module in (mvhybrid_crc, vit_12_crc):
    for variant in (None, "smoke", "demo"):
      checks.check(module.get_config(variant))
