"""Pieces the evaluation configs share."""

import ml_collections


def eval_model() -> ml_collections.ConfigDict:
  """config.model of an evaluation: the backbone "random" builds, or that a PyTorch file is read
  as. Sizes left None take the registry's defaults for the name (models.create), and each can be
  set from the command line: --config.model.name=vit_12 --config.model.dim=192."""
  size = lambda: ml_collections.config_dict.placeholder(int)
  return ml_collections.ConfigDict(dict(name="mvhybrid", dtype="float32", dim=size(),
                                        depth=size(), num_heads=size(), patch_size=size()))
