"""train.py's loop: a smoke run, exact resume, and config errors."""

import json
import os
import signal
import struct

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from configs import (hydra_einfft_crc, hydra_hybrid_crc, mvhybrid_crc, vim_einfft_crc, vit_12_crc,
                     vit_24_crc)
from flax import nnx

from mvhybrid_jax import checkpoints
from mvhybrid_jax.train import trainer


@pytest.fixture
def config(tmp_path, monkeypatch):
  monkeypatch.setenv("MVHYBRID_DATA_DIR", str(tmp_path / "data"))
  c = mvhybrid_crc.get_config("smoke")
  c.steps_per_epoch, c.epochs, c.checkpoint_every, c.log_every = 3, 2, 3, 1
  c.crops.n_local = 1
  return c


def read_tensorboard(folder):
  """{tag: [(step, value)]} from TensorBoard event files: TFRecord framing (length, crc, bytes,
  crc) around Event protos, decoded here without TensorFlow."""
  from tensorboardX.proto import event_pb2
  out = {}
  for name in sorted(os.listdir(folder)):
    data = open(os.path.join(folder, name), "rb").read()
    i = 0
    while i < len(data):
      n = struct.unpack("<Q", data[i:i + 8])[0]
      event = event_pb2.Event.FromString(data[i + 12:i + 12 + n])
      i += 12 + n + 4
      for v in event.summary.value:
        out.setdefault(v.tag, []).append((event.step, v.simple_value))
  return out


def student_params(workdir):
  with ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, "checkpoints")),
                             item_names=("student",)) as m:
    step = m.latest_step()
    restored = m.restore(step, args=ocp.args.Composite(student=ocp.args.StandardRestore()))
  return step, restored["student"]


def flat(tree):
  return {"/".join(str(getattr(k, "key", k)) for k in path): np.asarray(x)
          for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]
          if not jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)}


def test_resume_is_exact(config, tmp_path):
  straight = str(tmp_path / "straight")
  metrics = trainer.train(config, straight)
  assert metrics["step"] == 6 and np.isfinite(metrics["loss"])
  lines = [json.loads(l) for l in open(os.path.join(straight, "metrics.jsonl"))]
  assert [l["step"] for l in lines] == [1, 2, 3, 4, 5, 6]
  board = read_tensorboard(os.path.join(straight, "tensorboard"))
  assert [step for step, _ in board["train/loss"]] == [1, 2, 3, 4, 5, 6]
  np.testing.assert_allclose([v for _, v in board["train/loss"]], [l["loss"] for l in lines],
                             rtol=1e-6)
  # The monitors, in both logs: entropies below ln K, at most K prototypes, the lr schedule.
  for key in ("target_entropy_cls", "target_entropy_patch", "target_max_prob", "prototypes_used",
              "student_rank", "grad_norm_backbone", "grad_norm_dino_head", "grad_norm_ibot_head",
              "lr"):
    assert f"train/{key}" in board, key
    assert all(np.isfinite(l[key]) for l in lines), key
  k = config.heads.prototypes
  assert all(0 < l["target_entropy_cls"] <= np.log(k) + 1e-4 for l in lines)
  assert all(1 <= l["prototypes_used"] <= min(k, 2 * config.batch_size) for l in lines)
  assert lines[0]["lr"] == 0.0 and lines[2]["lr"] > 0  # DINOv2's warmup starts at 0
  # The exports: loss curves, and the teacher backbone (also readable from the workdir itself).
  assert open(os.path.join(straight, "loss.png"), "rb").read(8) == b"\x89PNG\r\n\x1a\n"
  exported, settings = checkpoints.load_backbone(os.path.join(straight, "teacher_backbone"))
  from_workdir, _ = checkpoints.load_backbone(straight)
  assert settings["name"] == "mvhybrid" and settings["dim"] == config.model.dim
  with ocp.CheckpointManager(os.path.abspath(os.path.join(straight, "checkpoints")),
                             item_names=("teacher",)) as m:
    teacher = m.restore(6, args=ocp.args.Composite(teacher=ocp.args.StandardRestore()))["teacher"]
  want = {k: v for k, v in flat(teacher["backbone"]).items() if "/rngs/" not in k}
  for model in (exported, from_workdir):
    have = flat(nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    assert set(have) == set(want)
    for k in want:
      np.testing.assert_array_equal(have[k], want[k], err_msg=k)
  split = str(tmp_path / "split")
  trainer.train(config, split, max_steps=3)
  assert student_params(split)[0] == 3
  with open(os.path.join(split, "metrics.jsonl"), "a") as f:  # as if killed after logging 4, 5
    f.write(json.dumps({**lines[3], "loss": -1.0}) + "\n" + json.dumps(lines[4]) + "\n")
  trainer.train(config, split)  # resumes at 3: parameters, optimiser, teacher, data stream
  resumed = [json.loads(l) for l in open(os.path.join(split, "metrics.jsonl"))]
  assert [l["step"] for l in resumed] == [1, 2, 3, 4, 5, 6] and resumed[3]["loss"] != -1.0
  step_a, a = student_params(straight)
  step_b, b = student_params(split)
  assert step_a == step_b == 6
  floats = lambda tree: np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)
                                        if not jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)])
  np.testing.assert_allclose(floats(a), floats(b), rtol=1e-5, atol=1e-6)
  # An earlier kept step of a workdir (learning curves): its teacher as orbax holds it.
  early, _ = checkpoints.load_backbone(split, step=3)
  with ocp.CheckpointManager(os.path.abspath(os.path.join(split, "checkpoints")),
                             item_names=("teacher",)) as m:
    teacher = m.restore(3, args=ocp.args.Composite(teacher=ocp.args.StandardRestore()))["teacher"]
  want = {k: v for k, v in flat(teacher["backbone"]).items() if "/rngs/" not in k}
  have = flat(nnx.to_pure_dict(nnx.state(early, nnx.Param)))
  assert any(not np.array_equal(have[k], v) for k, v in flat(nnx.to_pure_dict(
      nnx.state(checkpoints.load_backbone(split)[0], nnx.Param))).items())
  for k in want:
    np.testing.assert_array_equal(have[k], want[k], err_msg=k)
  with pytest.raises(ValueError, match=r"no step 4; it holds \[3, 6\]"):
    checkpoints.load_backbone(split, step=4)
  # Another model size in the same workdir is refused by key, not with orbax's shape error;
  # how the model runs (its dtype, remat) may change on a resume.
  config.model.dim = 16
  with pytest.raises(ValueError, match=r"config.model: .*/split/checkpoints holds a run with "
                                       r"model=\{.*'dim': 32.*\}, not \{.*'dim': 16"):
    trainer.train(config, split)
  config.model.dim, config.model.remat = 32, True
  assert trainer.train(config, split) == {}  # restored; no step was left to run


def test_config_errors(config, tmp_path):
  with pytest.raises(ValueError, match="config variant"):
    mvhybrid_crc.get_config("huge")
  with pytest.raises(ValueError, match="config.crops: unknown keys .'blur'."):
    trainer.crop_config({**config.crops.to_dict(), "blur": 0.5})
  assert trainer.crop_config(config.crops).blur_p == (0.0, 0.9, 0.5)  # as the paper's run
  config.warmup_epochs = config.epochs
  with pytest.raises(ValueError, match="config.warmup_epochs: expected"):
    trainer.train(config, str(tmp_path / "run"))
  config.warmup_epochs = 0
  config.data.path = str(tmp_path / "missing.array_record")
  with pytest.raises(ValueError, match="config.data.path: .* does not exist"):
    trainer.train(config, str(tmp_path / "run"))


def test_sigterm_saves_a_checkpoint_and_stops(config, tmp_path, monkeypatch):
  """A SIGTERM (a cluster's pre-emption) during step 2 of 6: the run saves step 2, which no
  schedule would have saved, and raises Preempted (train.py's exit code 75) without fetching
  another batch. (The fixture's schedule
  keeps the compiled step the other tests' one.)"""
  config.checkpoint_every = 1000
  real_batch, calls = trainer.sharding.global_batch, []

  def batch_then_signal(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2:
      os.kill(os.getpid(), signal.SIGTERM)
    return real_batch(*args, **kwargs)

  monkeypatch.setattr(trainer.sharding, "global_batch", batch_then_signal)
  workdir = str(tmp_path / "preempted")
  with pytest.raises(trainer.Preempted, match="signal SIGTERM: saved step 2 .* run the same "
                                              "command to resume"):
    trainer.train(config, workdir)
  assert len(calls) == 2
  assert student_params(workdir)[0] == 2


BASELINES = [vit_12_crc, vit_24_crc, vim_einfft_crc, hydra_einfft_crc, hydra_hybrid_crc]


def test_baseline_configs_share_the_recipe():
  """The paper's five other backbones: everything but the model is MV_Hybrid's recipe."""
  recipe = lambda config: {k: v for k, v in config.to_dict().items() if k != "model"}
  for module in BASELINES:
    for variant in (None, "smoke", "demo"):
      assert recipe(module.get_config(variant)) == recipe(mvhybrid_crc.get_config(variant))
      assert module.get_config(variant).model.name == module.__name__.split(".")[-1][:-4]


# Trained: one of each mixer family (vit_24's and hydra_einfft's smoke networks are vit_12's and
# a subset of hydra_hybrid's blocks).
@pytest.mark.parametrize("module", [vit_12_crc, vim_einfft_crc, hydra_hybrid_crc])
def test_baseline_configs_train(module, tmp_path, monkeypatch):
  """They run through the same trainer."""
  monkeypatch.setenv("MVHYBRID_DATA_DIR", str(tmp_path / "data"))
  c = module.get_config("smoke")
  c.crops.n_local, c.log_every = 1, 1
  metrics = trainer.train(c, str(tmp_path / "run"), max_steps=2)
  assert metrics["step"] == 2 and np.isfinite(metrics["loss"])
  _, settings = checkpoints.load_backbone(str(tmp_path / "run"))
  assert settings["name"] == c.model.name


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(config, tmp_path, monkeypatch):
  """NaN images from step 5 on: the run stops at the next log or save (step 6, with log_every
  beyond the run) with a clear error, and the latest checkpoint stays step 3."""
  config.log_every = 100
  real_batch, calls = trainer.sharding.global_batch, []

  def poisoned(batch, sharding):
    calls.append(1)
    if len(calls) >= 5:
      batch = {**batch, "global_crops": batch["global_crops"] * np.float32("nan")}
    return real_batch(batch, sharding)

  monkeypatch.setattr(trainer.sharding, "global_batch", poisoned)
  workdir = str(tmp_path / "diverged")
  with pytest.raises(FloatingPointError, match="non-finite loss nan at step 6; the last good "
                                               "checkpoint is step 3"):
    trainer.train(config, workdir)
  assert student_params(workdir)[0] == 3


def test_a_diverging_update_is_never_saved_and_the_last_good_step_resumes(config, tmp_path,
                                                                         monkeypatch):
  """From step 4 on the lr is infinite: step 4's update overflows the weights while its loss, of
  the weights before it, is still finite. Nothing non-finite is saved: the error names step 3,
  which holds finite weights, and a resume from it with the real schedule finishes."""
  real_lr = trainer.step_lib.learning_rate
  monkeypatch.setattr(trainer.step_lib, "learning_rate",
                      lambda c: lambda count: jnp.where(count >= 3, jnp.inf, 1e-3))
  workdir = str(tmp_path / "diverged")
  with pytest.raises(FloatingPointError, match=r"step 4 left non-finite weights \(its loss, "
                     r"computed before the update, was [0-9.]+;.*the last good checkpoint is step 3"):
    trainer.train(config, workdir)
  step, params = student_params(workdir)
  assert step == 3 and all(np.isfinite(x).all() for x in flat(params).values())
  monkeypatch.setattr(trainer.step_lib, "learning_rate", real_lr)
  assert trainer.train(config, workdir)["step"] == 6
  # An lr beyond float32 (1e40) is non-finite from the first update: nothing is saved at all.
  config.base_lr = 1e40
  fresh = str(tmp_path / "overflow")
  with pytest.raises(FloatingPointError, match="step 1 left non-finite weights.*the last good "
                     r"checkpoint is none \(no checkpoint was saved\)"):
    trainer.train(config, fresh)
  assert not os.listdir(os.path.join(fresh, "checkpoints"))


def test_a_second_run_on_a_workdir_is_refused(config, tmp_path):
  """Before anything is built: the lock names the live holder."""
  workdir = tmp_path / "busy"
  workdir.mkdir()
  with trainer.workdir_lib.Lock(str(workdir)):
    with pytest.raises(trainer.workdir_lib.Busy, match=rf"another run \(pid {os.getpid()}"):
      trainer.train(config, str(workdir))
  assert sorted(os.listdir(workdir)) == []


def test_an_unreadable_record_is_skipped_named_and_not_met_again(config, tmp_path, monkeypatch):
  """Tiles packed by another tool, one of them truncated inside the ArrayRecord and met in the
  first batch: the run goes on, names it (log, skipped_records.jsonl), counts it in metrics;
  resumed after it, the run does not meet it again; allowed none, the run stops naming it."""
  import grain
  from mvhybrid_jax.data import folders, pipeline, records, synthetic
  rng = np.random.default_rng(0)
  n = config.batch_size * config.steps_per_epoch  # one epoch
  first_batch = list(pipeline.host_shard(grain.MapDataset.range(n), 0, 1)
                     .shuffle(seed=config.seed))[:config.batch_size]
  bad = first_batch[3]
  out = str(tmp_path / "tiles.array_record")
  with records.AtomicRecords(out) as w:
    for i in range(n):
      data = records.encode_png(synthetic.class_patch(rng, i % 9, synthetic.make_studies(1, 0)[0],
                                                      64))
      w.write(data[:len(data) // 3] if i == bad else data)
    w.meta.update(classes=[], labels=[-1] * n, paths=[f"tiles/{i}.png" for i in range(n)],
                  skipped=[])
  config.data.path = out
  config.data.max_skipped_fraction = 0.05
  workdir = str(tmp_path / "run")
  trainer.train(config, workdir, max_steps=2)
  rows = [json.loads(l) for l in open(os.path.join(workdir, "skipped_records.jsonl"))]
  assert [(r["step"], r["index"]) for r in rows] == [(1, bad)]
  assert rows[0]["record"] == f"{out} record {bad} (packed from tiles/{bad}.png)"
  assert "truncated" in rows[0]["reason"]
  metrics = [json.loads(l) for l in open(os.path.join(workdir, "metrics.jsonl"))]
  assert [m["skipped_records"] for m in metrics] == [1, 1]
  met = []
  real_add = trainer.workdir_lib.SkippedRecords.add
  monkeypatch.setattr(trainer.workdir_lib.SkippedRecords, "add",
                      lambda self, step, skipped: (met.extend(skipped), real_add(self, step, skipped)))
  assert trainer.train(config, workdir, max_steps=3)["skipped_records"] == 1
  assert met == []  # step 3 finishes the epoch without meeting it
  config.data.max_skipped_fraction = 0.0
  with pytest.raises(ValueError, match=rf"config.data.max_skipped_fraction: 1 unreadable records "
                     rf"is more than the 0 allowed of the {n} this host reads: {out} record {bad}"):
    trainer.train(config, str(tmp_path / "strict"))
  assert not os.listdir(os.path.join(tmp_path, "strict", "checkpoints"))
