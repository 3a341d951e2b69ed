"""The gene-expression task end to end on the smoke slides: two backbones side by side, reports."""

import csv
import json
import os

import pytest
from flax import nnx

from configs import eval_st
from mvhybrid_jax import checkpoints, models
from mvhybrid_jax.eval import features, probes, st


def test_random_and_exported_side_by_side(tmp_path, monkeypatch):
  monkeypatch.setenv("MVHYBRID_DATA_DIR", str(tmp_path / "data"))
  c = eval_st.get_config("smoke")
  export = str(tmp_path / "vit_export")
  settings = {"name": "vit_12", "dim": 32, "depth": 2, "num_heads": 2}
  checkpoints.save_backbone(export, models.create("vit_12", rngs=nnx.Rngs(1), dim=32, depth=2,
                                                  num_heads=2), settings)
  c.checkpoint = f"random,{export}"
  c.protocols = ("random", "loso", "patient")
  out = str(tmp_path / "eval")
  results = st.run(c, out)
  # random takes the architecture of the checkpoint it is compared with (config.model: mvhybrid)
  assert list(results) == ["random vit_12", "vit_export"]
  assert results["vit_export"]["backbone"] == results["random vit_12"]["backbone"] == "vit_12"
  for r in results.values():
    p = r["protocols"]
    assert len(p["random"]["folds"]) == 4 and len(p["loso"]["folds"]) == 4  # 4 studies
    assert sorted(g for f in p["loso"]["folds"] for g in f["test_groups"]) == sorted(
        {g for f in p["loso"]["folds"] for g in f["test_groups"]})
    assert p["drop"]["pcc"] == pytest.approx(
        (p["random"]["mean"]["pcc"] - p["loso"]["mean"]["pcc"]) / p["random"]["mean"]["pcc"])
  assert json.load(open(os.path.join(out, "results.json"))).keys() == results.keys()
  md = open(os.path.join(out, "results.md")).read()
  assert "| random vit_12 | vit_12 | loso |" in md and "| vit_export | vit_12 | drop |" in md
  rows = list(csv.DictReader(open(os.path.join(out, "folds.csv"))))
  assert len(rows) == 2 * (4 + 4 + 4)
  genes = list(csv.DictReader(open(os.path.join(out, "genes.csv"))))
  assert len(genes) == 2 * 3 * 50 and genes[0]["gene"] == "GENE000"
  assert open(os.path.join(out, "pcc.png"), "rb").read(4) == b"\x89PNG"
  assert len(os.listdir(os.path.join(out, "features"))) == 2
  # each backbone's probe, refitted on all 128 spots, with what predict.py checks
  probe = probes.load_probe(results["vit_export"]["probe"])
  assert results["vit_export"]["probe"] == os.path.join(out, "probes", "vit_export.npz")
  assert probe.genes[0] == "GENE000" and len(probe.genes) == 50
  model, _ = checkpoints.load_backbone(export)
  assert probe.meta["params_digest"] == features.params_digest(model)
  assert probe.meta["backbone"]["name"] == "vit_12" and probe.meta["tile"] == 64
  assert probe.meta["checkpoint"] == os.path.abspath(export)
  assert probe.meta["data"] == "synthetic:smoke" and probe.meta["embedding"] == "cls+mean"
  assert os.path.exists(os.path.join(out, "probes", "random_vit_12.npz"))


def test_config_errors(tmp_path, monkeypatch):
  monkeypatch.setenv("MVHYBRID_DATA_DIR", str(tmp_path / "data"))
  c = eval_st.get_config("smoke")
  c.checkpoint = str(tmp_path / "nowhere")
  with pytest.raises(ValueError, match="config.checkpoint: .* is not 'random', a folder"):
    st.run(c, str(tmp_path / "out"))
  c.checkpoint, c.protocols = "random", ("random", "slides")
  with pytest.raises(ValueError, match=r"config.protocols: unknown \['slides'\]"):
    st.run(c, str(tmp_path / "out"))
  c.protocols, c.data.dir = ("random",), str(tmp_path / "no_hest")
  with pytest.raises(ValueError, match="config.data.dir: .* is not a folder"):
    st.run(c, str(tmp_path / "out"))


def test_hest_folder(tmp_path):
  """HEST-1k as HEST writes it: samples chosen by a metadata filter from a CSV with more rows than
  the download (skipped and listed), HEST's gene selection, all protocols, patients grouped by
  study; a gene list naming a gene the data lacks is an error that names it."""
  import pandas as pd
  from tests.data.test_hest import write_sample
  root = tmp_path / "hest"
  for i in range(4):
    write_sample(root, f"S{i}", seed=i)
  pd.DataFrame({"id": [f"S{i}" for i in range(6)], "dataset_title": ["a", "a", "b", "b", "b", "c"],
                "patient": ["Patient 1", "Patient 2", "Patient 1", "", "", ""],
                "organ": ["Bowel"] * 5 + ["Brain"]}).to_csv(root / "meta.csv", index=False)
  c = eval_st.get_config("smoke")
  c.data.dir, c.data.metadata_csv, c.data.k = str(root), str(root / "meta.csv"), 10
  c.data.where, c.data.skip_missing = "organ=Bowel", True
  c.protocols, c.folds = ("random", "loso", "patient"), 4
  out = tmp_path / "out"
  r = st.run(c, str(out))["random mvhybrid"]["protocols"]
  assert [f["test_groups"] for f in r["loso"]["folds"]] == [["a"], ["b"]]
  # "Patient 1" of studies a and b are two patients; S3's empty patient is b's "Patient 1"
  assert sorted(g for f in r["patient"]["folds"] for g in f["test_groups"]) == [
      "a / Patient 1", "a / Patient 2", "b / Patient 1"]
  assert len(r["random"]["per_gene_pcc"]) == 10
  assert "Skipped 1 samples whose files are missing: S4 (patches/S4.h5 and st/S4.h5ad)" in \
      (out / "results.md").read_text()
  c.data.skip_missing = False
  with pytest.raises(ValueError, match=r"config.data: .*hest: 1 of 5 chosen samples lack their files"):
    st.run(c, str(tmp_path / "out1"))
  (root / "genes.json").write_text('{"genes": ["G1", "G2", "NOPE"]}')
  c.data.genes_json, c.data.skip_missing = str(root / "genes.json"), True
  with pytest.raises(ValueError, match=r"genes \['NOPE'\]"):
    st.run(c, str(tmp_path / "out2"))
  pd.DataFrame({"id": ["S0", "S1"]}).to_csv(root / "ids_only.csv", index=False)
  c.data.metadata_csv, c.data.genes_json, c.data.where = str(root / "ids_only.csv"), "", ""
  with pytest.raises(ValueError, match=r"ids_only.csv: expected a column 'dataset_title'"):
    st.run(c, str(tmp_path / "out3"))  # loso needs the study column, random does not
  c.protocols = ("random",)
  assert len(st.run(c, str(tmp_path / "out4"))["random mvhybrid"]["protocols"]["random"][
      "folds"]) == 2
