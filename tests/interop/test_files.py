"""Checkpoint files: formats, a pickled object refused, atomic writes."""

import os

import numpy as np
import pytest
import torch

from mvhybrid_jax import interop


class NotATensor:
  pass


def test_formats_round_trip(tmp_path):
  rng = np.random.default_rng(0)
  sd = {"a.weight": rng.standard_normal((3, 4)).astype(np.float32),
        "b": rng.integers(0, 9, (5,)).astype(np.int64)}
  for suffix in (".safetensors", ".npz"):
    path = str(tmp_path / f"sd{suffix}")
    interop.save(sd, path)
    back = interop.load(path)
    assert sorted(back) == sorted(sd) and all(np.array_equal(back[k], sd[k]) for k in sd)
    assert not os.path.exists(path + ".tmp")
  path = str(tmp_path / "ckpt.pth")
  torch.save({"teacher": {k: torch.from_numpy(v) for k, v in sd.items()},
              "meta": {"iteration": 3},
              "half": torch.ones(2, dtype=torch.bfloat16)}, path)
  back = interop.load(path)
  assert np.array_equal(back["teacher"]["a.weight"], sd["a.weight"])
  assert back["meta"]["iteration"] == 3 and back["half"].dtype == np.float32


def test_pickled_objects_are_refused(tmp_path):
  path = str(tmp_path / "evil.pth")
  torch.save({"weights": torch.zeros(2), "object": NotATensor()}, path)
  with pytest.raises(ValueError, match=r"evil\.pth: refused: it pickles "
                     r"\S*test_files\.NotATensor, an object other than tensors") as e:
    interop.load(path)
  assert "weights_only=False" not in str(e.value)  # torch's advice, which would run its code


def test_broken_files_are_named(tmp_path):
  """Empty, truncated and random files, and an .npz of objects: one line naming the file."""
  rng = np.random.default_rng(0)
  good = {"w": rng.standard_normal(64).astype(np.float32)}
  torch.save({"w": torch.from_numpy(good["w"])}, tmp_path / "good.pth")
  interop.save(good, str(tmp_path / "good.safetensors"))
  np.savez(tmp_path / "objects.npz", w=np.array([{"a": 1}], dtype=object))
  cases = {
      "empty.pth": (b"", r"not a readable PyTorch checkpoint \(EOFError: empty or cut short\)"),
      "cut.pth": ((tmp_path / "good.pth").read_bytes()[:300],
                  r"not a readable PyTorch checkpoint \(RuntimeError: PytorchStreamReader"),
      "random.pth": (rng.bytes(500), r"not a readable PyTorch checkpoint \(UnpicklingError"),
      "empty.safetensors": (b"", r"not a readable \.safetensors file \(.*header"),
      "cut.safetensors": ((tmp_path / "good.safetensors").read_bytes()[:120],
                          r"not a readable \.safetensors file"),
      "random.npz": (rng.bytes(100), r"not a readable \.npz file \(not a zip"),
  }
  for name, (data, pattern) in cases.items():
    (tmp_path / name).write_bytes(data)
    with pytest.raises(ValueError, match=rf"{name}: {pattern}") as e:
      interop.load(str(tmp_path / name))
    assert "\n" not in str(e.value) and "weights_only=False" not in str(e.value)
  with pytest.raises(ValueError, match=r"objects\.npz: holds object arrays"):
    interop.load(str(tmp_path / "objects.npz"))


def test_bad_paths(tmp_path):
  with pytest.raises(ValueError, match="no such file"):
    interop.load(str(tmp_path / "missing.pth"))
  (tmp_path / "weights.ckpt").write_bytes(b"x")
  with pytest.raises(ValueError, match=r"expected a \.pth, \.pt, \.bin, \.safetensors or \.npz"):
    interop.load(str(tmp_path / "weights.ckpt"))
  with pytest.raises(ValueError, match=r"expected a \.safetensors or \.npz output"):
    interop.save({}, str(tmp_path / "out.pth"))
