"""notebooks/: each jupytext source is paired with its .ipynb and runs headless on tiny settings."""

import os
import pathlib

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))


def _cells(nb):
  return [(c.cell_type, c.source) for c in nb.cells]


def test_there_are_notebooks():
  assert [p.name for p in NOTEBOOKS] == ["01_ssm_transfer_functions.py",
                                         "02_mixers_and_feature_maps.py",
                                         "03_frequency_experiment.py"]


@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda p: p.stem)
def test_paired_ipynb_matches_its_source(source):
  """The .ipynb is what `jupytext --sync` makes of the .py (edit either, then sync)."""
  paired = source.with_suffix(".ipynb")
  assert paired.exists(), f"{paired.name} missing: run jupytext --sync {source}"
  assert _cells(nbformat.read(paired, as_version=4)) == _cells(jupytext.read(source))


@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(source, tmp_path, monkeypatch):
  monkeypatch.setenv("MVH_SMOKE", "1")
  monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
  nb = jupytext.read(source)
  NotebookClient(nb, timeout=600, kernel_name="python3",
                 resources={"metadata": {"path": str(tmp_path)}}).execute()
  outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
  assert not [o for o in outputs if o.output_type == "error"]
  assert any("image/png" in o.get("data", {}) for o in outputs)  # the figures rendered
