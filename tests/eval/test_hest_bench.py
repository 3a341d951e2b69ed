"""HEST-Benchmark's own tasks: task folders as HEST ships them, the probe and PCC re-derived with
scikit-learn and scipy as HEST's trainer.py computes them, the leaderboard, and bad folders."""

import csv
import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.decomposition import PCA
from sklearn.linear_model import Ridge
from sklearn.preprocessing import StandardScaler

from configs import eval_hest_bench
from mvhybrid_jax.data import hest
from mvhybrid_jax.eval import backbones, features, hest_bench
from tests.data.test_hest import write_sample

GENES = [f"G{i}" for i in range(12)]
PLANTED = GENES[:4]  # counts driven by the patch's colour; the rest are noise


def write_task(root, name, samples, splits, seed=0):
  """A HEST-Benchmark task folder: patches/ and adata/ as HEST writes them, splits/train_K.csv and
  test_K.csv with paths relative to the folder, var_50genes.json."""
  task = root / name
  for i, sid in enumerate(samples):
    rng = np.random.default_rng(seed + i)
    n = 24
    red = rng.uniform(0, 1, n)
    images = np.zeros((n, 16, 16, 3), np.uint8)
    images[..., 0] = (60 + 190 * red)[:, None, None]
    images[..., 1:] = rng.integers(40, 120, (n, 16, 16, 2))
    rate = np.concatenate([np.exp(3 * red)[:, None] * np.ones(len(PLANTED)),
                           np.full((n, len(GENES) - len(PLANTED)), 4.0)], 1)
    counts = rng.poisson(np.concatenate([rate, np.full((3, len(GENES)), 2.0)])).astype(np.float32)
    write_sample(task, sid, n=n, extra_spots=3, seed=seed + i, folder="adata", counts=counts,
                 genes=GENES, images=images)
  (task / "splits").mkdir()
  for k, test in enumerate(splits):
    for part, ids in (("train", [s for s in samples if s not in test]), ("test", test)):
      pd.DataFrame({"sample_id": ids, "patches_path": [f"patches/{s}.h5" for s in ids],
                    "expr_path": [f"adata/{s}.h5ad" for s in ids]}).to_csv(
                        task / "splits" / f"{part}_{k}.csv", index=False)
  (task / "var_50genes.json").write_text(json.dumps({"genes": GENES}))
  return task


@pytest.fixture
def bench(tmp_path):
  write_task(tmp_path / "bench", "READ", ["R1", "R2", "R3"], [["R1"], ["R2"], ["R3"]], seed=10)
  write_task(tmp_path / "bench", "COAD", ["C1", "C2", "C3", "C4"], [["C1", "C2"], ["C3", "C4"]])
  return tmp_path / "bench"


def small_config(bench_dir):
  c = eval_hest_bench.get_config()
  c.bench_dir = str(bench_dir)
  c.model.update(dim=32, depth=2, num_heads=2, patch_size=8)
  return c


def hest_split_pcc(x_train, y_train, x_test, y_test, seed):
  """HEST's trainer.py, re-derived: scaler + PCA fitted on train, Ridge(lsqr, no intercept,
  alpha 100 / (d * genes), max_iter 1000), scipy's pearsonr per gene, their mean."""
  scaler = StandardScaler().fit(x_train)
  pca = PCA(n_components=min(256, *x_train.shape), random_state=seed).fit(
      scaler.transform(x_train))
  z_train, z_test = pca.transform(scaler.transform(x_train)), pca.transform(scaler.transform(x_test))
  ridge = Ridge(alpha=100 / (z_train.shape[1] * y_train.shape[1]), solver="lsqr",
                fit_intercept=False, max_iter=1000, random_state=seed).fit(z_train, y_train)
  pred = ridge.predict(z_test)
  r = np.array([stats.pearsonr(y_test[:, g], pred[:, g])[0] for g in range(y_test.shape[1])])
  return r.mean(), r


def test_hest_benchmark_tasks_as_shipped(bench, tmp_path):
  c = small_config(bench)
  out = tmp_path / "out"
  results = hest_bench.run(c, str(out))
  r = results["random mvhybrid"]
  assert list(r["tasks"]) == ["COAD", "READ"]  # the leaderboard's order
  assert [s["test"] for s in r["tasks"]["READ"]["splits"]] == [["R1"], ["R2"], ["R3"]]
  assert [s["test"] for s in r["tasks"]["COAD"]["splits"]] == [["C1", "C2"], ["C3", "C4"]]
  # the oracle: HEST's regression path on the same embeddings
  _, model, _ = backbones.load("random", c.model, c.seed)
  for name, task in r["tasks"].items():
    t = hest.read_task(str(bench / name))
    samples = hest_bench.task_samples(t)
    feats = {sid: features.extract(model, hest.Patches([s], 0.5), cache_dir=str(out / "features"))
             for sid, s in samples.items()}
    y = {sid: np.log1p(hest.expression(s, GENES).astype(np.float64)) for sid, s in samples.items()}
    pccs = []
    for (train, test), got in zip(t.splits, task["splits"]):
      stack = lambda d, df: np.concatenate([d[s] for s in df["sample_id"]])
      pcc, per_gene = hest_split_pcc(stack(feats, train), stack(y, train), stack(feats, test),
                                     stack(y, test), c.seed)
      assert got["pcc"] == pytest.approx(pcc, abs=1e-9)
      np.testing.assert_allclose(got["per_gene_pcc"], per_gene, atol=1e-9)
      pccs.append(pcc)
    assert task["mean"]["pcc"] == pytest.approx(np.mean(pccs), abs=1e-9)
    assert task["std"]["pcc"] == pytest.approx(np.std(pccs), abs=1e-9)
    # planted genes far above the noise genes
    per_gene = np.mean([s["per_gene_pcc"] for s in task["splits"]], axis=0)
    assert per_gene[:len(PLANTED)].mean() > 0.5 > per_gene[len(PLANTED):].mean() + 0.3
  assert r["mean"] == pytest.approx(np.mean([t["mean"]["pcc"] for t in r["tasks"].values()]))
  md = (out / "results.md").read_text()
  coad, read = r["tasks"]["COAD"], r["tasks"]["READ"]
  assert "| checkpoint | backbone | COAD | READ | mean |" in md
  assert (f"| random mvhybrid | mvhybrid | {coad['mean']['pcc']:.3f} ± {coad['std']['pcc']:.3f} | "
          f"{read['mean']['pcc']:.3f} ± {read['std']['pcc']:.3f} | {r['mean']:.3f} |") in md
  assert "(COAD 2, READ 3)" in md
  rows = list(csv.DictReader(open(out / "splits.csv")))
  assert [(row["task"], row["test_samples"]) for row in rows] == [
      ("COAD", "C1;C2"), ("COAD", "C3;C4"), ("READ", "R1"), ("READ", "R2"), ("READ", "R3")]
  assert len(list(csv.DictReader(open(out / "genes.csv")))) == 2 * len(GENES)
  assert (out / "bench.png").read_bytes()[:4] == b"\x89PNG"
  # one task by name, or the task's own folder
  c.tasks = "READ"
  assert list(hest_bench.run(c, str(tmp_path / "one"))["random mvhybrid"]["tasks"]) == ["READ"]
  c.tasks, c.bench_dir = "", str(bench / "COAD")
  assert list(hest_bench.run(c, str(tmp_path / "own"))["random mvhybrid"]["tasks"]) == ["COAD"]


def test_bad_benchmark_folders(bench, tmp_path):
  c = small_config("")
  with pytest.raises(ValueError, match="config.bench_dir: set it to HEST-Benchmark's data folder"):
    hest_bench.run(c, str(tmp_path / "o"))
  c.bench_dir, c.tasks = str(bench), "COAD,LUNG"
  with pytest.raises(ValueError, match=r"config.tasks: \['LUNG'\] not found in .*; it has "
                     r"\['COAD', 'READ'\]"):
    hest_bench.run(c, str(tmp_path / "o"))
  (bench / "READ" / "splits" / "test_2.csv").unlink()
  with pytest.raises(ValueError, match=r"READ/splits: expected train_0.csv, test_0.csv, .* in "
                     r"pairs"):
    hest.read_task(str(bench / "READ"))
  (bench / "COAD" / "adata" / "C3.h5ad").unlink()
  with pytest.raises(ValueError, match=r"COAD: 1 files its splits name are missing: .*C3.h5ad"):
    hest.read_task(str(bench / "COAD"))
  (bench / "COAD" / "var_50genes.json").write_text('{"gene": []}')
  with pytest.raises(ValueError, match=r"var_50genes.json: expected \{\"genes\": \[...\]\}"):
    hest.read_task(str(bench / "COAD"))
  (bench / "COAD" / "var_50genes.json").unlink()
  with pytest.raises(ValueError, match=r"COAD: no var_50genes.json"):
    hest.read_task(str(bench / "COAD"))
  pd.DataFrame({"sample_id": ["x"], "patches": ["p"]}).to_csv(
      bench / "READ" / "splits" / "train_0.csv", index=False)
  (bench / "READ" / "splits" / "test_2.csv").write_text("sample_id,patches_path,expr_path\n")
  with pytest.raises(ValueError, match=r"train_0.csv: expected HEST-Benchmark's split columns"):
    hest.read_task(str(bench / "READ"))
