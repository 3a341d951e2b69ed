"""State-dict files: .pth/.pt/.bin (PyTorch, loaded with weights_only=True: tensors and containers
only, never code), .safetensors and .npz in; .safetensors and .npz out."""

from __future__ import annotations

import os
import pickle

import numpy as np

TORCH_SUFFIXES = (".pth", ".pt", ".bin")


def _to_numpy(obj):
  import torch
  if isinstance(obj, torch.Tensor):
    t = obj.detach().cpu()
    return (t.to(torch.float32) if t.is_floating_point() else t).numpy()
  if isinstance(obj, dict):
    return {k: _to_numpy(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return type(obj)(_to_numpy(v) for v in obj)
  return obj


def load(path: str) -> dict:
  """A checkpoint as nested dicts of numpy arrays (floating tensors as float32)."""
  if not os.path.isfile(path):
    raise ValueError(f"{path}: no such file")
  if path.endswith(TORCH_SUFFIXES):
    try:
      import torch
    except ImportError:
      raise ValueError(f"{path}: reading PyTorch files needs torch; convert it to .safetensors "
                       "elsewhere, or install torch") from None
    try:
      obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
      raise ValueError(f"{path}: refused: it pickles objects other than tensors and containers "
                       f"(loaded with weights_only=True, which never runs code): {e}") from None
    if not isinstance(obj, dict):
      raise ValueError(f"{path}: expected a dict (a state dict or a checkpoint), got "
                       f"{type(obj).__name__}")
    return _to_numpy(obj)
  if path.endswith(".safetensors"):
    from safetensors.numpy import load_file
    return load_file(path)
  if path.endswith(".npz"):
    with np.load(path, allow_pickle=False) as f:
      return {k: f[k] for k in f.files}
  raise ValueError(f"{path}: expected a .pth, .pt, .bin, .safetensors or .npz file")


def save(state_dict: dict[str, np.ndarray], path: str) -> None:
  """Writes .safetensors (or .npz) through a temporary file, renamed at the end."""
  tmp = path + ".tmp"
  arrays = {k: np.ascontiguousarray(v) for k, v in state_dict.items()}
  if path.endswith(".safetensors"):
    from safetensors.numpy import save_file
    save_file(arrays, tmp)
  elif path.endswith(".npz"):
    with open(tmp, "wb") as f:
      np.savez(f, **arrays)
  else:
    raise ValueError(f"{path}: expected a .safetensors or .npz output")
  os.replace(tmp, path)
