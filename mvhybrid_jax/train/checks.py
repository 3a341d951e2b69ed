"""Every value of a pretraining config checked before anything is built or compiled, so that a
bad override fails in a second with the key's name, not in a ZeroDivisionError after minutes of
compiling (or, for keep_checkpoints=0, not at all: orbax would keep no checkpoint)."""

from __future__ import annotations

import math

from mvhybrid_jax.train import step as step_lib

AT_LEAST_1 = ("epochs", "steps_per_epoch", "batch_size", "log_every", "checkpoint_every",
              "keep_checkpoints", "heads.prototypes", "heads.hidden", "heads.bottleneck",
              "crops.global_size", "crops.local_size")
AT_LEAST_0 = ("warmup_epochs", "teacher_temp_warmup_epochs", "freeze_last_layer_epochs",
              "crops.n_local", "data.num_workers", "final_lr", "koleo_weight", "patch_embed_lr",
              "weight_decay")
POSITIVE = ("base_lr", "student_temp", "teacher_temp", "clip", "layer_decay")
# (key, low, high, whether high is allowed)
WITHIN = (("teacher_momentum", 0.0, 1.0, True), ("center_momentum", 0.0, 1.0, False),
          ("layer_decay", 0.0, 1.0, True), ("data.max_skipped_fraction", 0.0, 1.0, True),
          ("model.drop_path_rate", 0.0, 1.0, False))


def _get(config, key):
  node = config
  for part in key.split("."):
    node = node[part]
  return node


def _values(value):
  return tuple(value) if isinstance(value, (list, tuple)) else (value,)


def _number(key, value):
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
    raise ValueError(f"config.{key}: expected a finite number, got {value!r}")
  return value


def check(config) -> None:
  """Raises ValueError naming the first key whose value is out of range."""
  def each(key):
    try:
      value = _get(config, key)
    except (KeyError, AttributeError):
      return ()  # a key this config does not have (e.g. a backbone without drop_path_rate)
    if value is None and key.startswith("model."):
      return ()  # left to the registry's default
    return [_number(key, v) for v in _values(value)]

  for key in AT_LEAST_1:
    for v in each(key):
      if v < 1 or int(v) != v:
        raise ValueError(f"config.{key}: expected an integer >= 1, got {_get(config, key)!r}")
  for key in AT_LEAST_0:
    for v in each(key):
      if v < 0:
        raise ValueError(f"config.{key}: expected >= 0, got {_get(config, key)!r}")
  for key in POSITIVE:
    for v in each(key):
      if v <= 0:
        raise ValueError(f"config.{key}: expected > 0, got {_get(config, key)!r}")
  for key, low, high, closed in WITHIN:
    for v in each(key):
      if not (low <= v <= high if closed else low <= v < high):
        raise ValueError(f"config.{key}: expected {low} <= value {'<=' if closed else '<'} "
                         f"{high}, got {_get(config, key)!r}")
  # The backbone's integer settings (dim, depth, heads, state size, patch size...) are all sizes.
  for key, value in config.model.items():
    if isinstance(value, int) and not isinstance(value, bool) and value < 1:
      raise ValueError(f"config.model.{key}: expected an integer >= 1, got {value!r}")
  try:
    model = step_lib.model_settings(config)
  except ValueError as e:
    raise ValueError(f"config.model: {e}") from None
  if model["dim"] % model["num_heads"]:
    raise ValueError(f"config.model.dim: {model['dim']} must divide into "
                     f"config.model.num_heads={model['num_heads']} heads")
  if not config.warmup_epochs < config.epochs:
    raise ValueError(f"config.warmup_epochs: expected 0 <= warmup_epochs < epochs "
                     f"({config.epochs}), got {config.warmup_epochs}")
  patch = step_lib.patch_size(config)
  for key in ("crops.global_size", "crops.local_size"):
    if _get(config, key) % patch:
      raise ValueError(f"config.{key}: {_get(config, key)} is not a multiple of the patch size "
                       f"{patch}")
