"""State-dict files: .pth/.pt/.bin (PyTorch, loaded with weights_only=True: tensors and containers
only, never code), .safetensors and .npz in; .safetensors and .npz out."""

from __future__ import annotations

import os
import pickle
import re
import zipfile

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


def _first_sentence(text: str) -> str:
  return text.strip().split("\n")[0].split(". ")[0].strip()


def _torch_error(path: str, e: Exception) -> ValueError:
  """torch.load's failure as one line naming the file: a refused class (never run), or a file
  that is not a PyTorch checkpoint at all. torch's advice to load with weights_only=False is
  not repeated: that would run the file's code, which this project never does."""
  text = str(e)
  refused = re.search(r"Unsupported global: GLOBAL (\S+)", text)
  if refused:
    return ValueError(f"{path}: refused: it pickles {refused.group(1)}, an object other than "
                      "tensors and containers (it is read with weights_only=True, which never "
                      "runs code); save its state dict of tensors, or convert it to .safetensors "
                      "where its code can be trusted")
  detail = _first_sentence(text.split("WeightsUnpickler error:", 1)[-1]) or "empty or cut short"
  return ValueError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {detail})")


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
    except (pickle.UnpicklingError, EOFError, RuntimeError, OSError) as e:
      raise _torch_error(path, e) from None
    if not isinstance(obj, dict):
      raise ValueError(f"{path}: expected a dict (a state dict or a checkpoint), got "
                       f"{type(obj).__name__}")
    return _to_numpy(obj)
  if path.endswith(".safetensors"):
    from safetensors.numpy import load_file
    try:
      return load_file(path)
    except Exception as e:  # noqa: BLE001 -- safetensors' Rust error has no Python base to name
      raise ValueError(f"{path}: not a readable .safetensors file ({e})") from None
  if path.endswith(".npz"):
    with open(path, "rb") as f:
      if f.read(4) != b"PK\x03\x04":
        raise ValueError(f"{path}: not a readable .npz file (not a zip of .npy arrays)")
    try:
      with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}
    except ValueError as e:
      if "Object arrays" in str(e):
        raise ValueError(f"{path}: holds object arrays, which only pickle can read (never used "
                         "here); save numeric arrays") from None
      raise ValueError(f"{path}: not a readable .npz file ({e})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as e:
      raise ValueError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from None
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
