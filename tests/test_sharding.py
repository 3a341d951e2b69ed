"""FSDP sharding rules, the mesh, and one step on an 8-device CPU mesh against one device."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from configs import mvhybrid_crc
from mvhybrid_jax import sharding
from mvhybrid_jax.train import step

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("shape, rules, fsdp, min_size, expected", [
    ((384, 1536), [(".*", "fsdp")], 4, 0, P(None, "fsdp")),         # largest dimension
    ((1536, 384), [(".*", "fsdp")], 4, 0, P("fsdp", None)),
    ((6, 384, 10), [(".*", "fsdp")], 4, 0, P(None, "fsdp", None)),
    ((385, 8), [(".*", "fsdp")], 4, 0, P(None, "fsdp")),            # largest divisible one
    ((385, 7), [(".*", "fsdp")], 4, 0, P()),                        # none divisible
    ((384, 1536), [(".*", "fsdp")], 4, 10**6, P()),                 # small: replicated
    ((384, 1536), [("pos_embed", "replicate"), (".*", "fsdp")], 4, 0, P()),  # first match wins
    ((384, 1536), [("blocks", "fsdp")], 4, 0, P()),                 # no match: replicated
    ((384, 1536), [(".*", "fsdp")], 1, 0, P()),                     # no fsdp axis
    ((), [(".*", "fsdp")], 4, 0, P()),
])
def test_spec(shape, rules, fsdp, min_size, expected):
  assert sharding.spec("student/backbone/pos_embed", shape, rules, fsdp, min_size) == expected


def test_bad_rules_and_meshes():
  with pytest.raises(ValueError, match="config.sharding.rules"):
    sharding.check_rules([(".*", "zero3")])
  n = jax.device_count()
  with pytest.raises(ValueError, match="config.mesh: at most one"):
    sharding.make_mesh(-1, -1)
  with pytest.raises(ValueError, match="config.mesh: data=.* must equal"):
    sharding.make_mesh(n + 1, 1)
  mesh = sharding.make_mesh(-1, 1)
  assert dict(mesh.shape) == {"data": n, "fsdp": 1}


def test_path_names_reach_nnx_state():
  from flax import nnx
  model = nnx.Linear(4, 8, rngs=nnx.Rngs(0))
  names = []
  jax.tree_util.tree_map_with_path(lambda p, _: names.append(sharding.path_name(p)),
                                   nnx.state(model))
  assert sorted(names) == ["bias", "kernel"]


STEP = textwrap.dedent("""
    import json, sys
    import jax
    jax.config.update("jax_num_cpu_devices", 8)
    import numpy as np
    from flax import nnx
    from configs import mvhybrid_crc
    from mvhybrid_jax.data import masking
    from mvhybrid_jax import sharding
    from mvhybrid_jax.train import step

    c = mvhybrid_crc.get_config("smoke")
    c.sharding.min_size = 0  # shard everything the fsdp axis divides
    c.koleo_scope = "global"  # per-device KoLeo differs by design (tests/losses, below)
    c.warmup_epochs, c.base_lr = 0, 0.05  # both steps move the weights
    rng = np.random.default_rng(0)
    g, l, n = c.crops.global_size, c.crops.local_size, (c.crops.global_size // 16) ** 2
    batch = {"global_crops": rng.normal(size=(8, 2, g, g, 3)).astype(np.float32),
             "local_crops": rng.normal(size=(8, c.crops.n_local, l, l, 3)).astype(np.float32),
             "masks": masking.batch_masks(rng, 16, (g // 16, g // 16)).reshape(8, 2, n)}

    def run(mesh):
      graphdef, state, shardings = step.sharded_state(c, mesh)
      specs = {sharding.path_name(p): str(s.spec) for p, s in
               jax.tree_util.tree_flatten_with_path(shardings)[0]}
      bs = sharding.batch_sharding(mesh)
      fn = step.make_step(c, graphdef, shardings, bs)
      losses = []
      for _ in range(2):
        state, loss, terms = fn(state, sharding.global_batch(batch, bs))
        losses.append(float(loss))
      # Everything: student, teacher, and AdamW's moments (mu = 0.1 g after the first step, so
      # the gradients themselves are compared).
      leaves = jax.tree_util.tree_flatten_with_path(nnx.to_pure_dict(state))[0]
      return losses, {sharding.path_name(p): np.asarray(x) for p, x in leaves
                      if jax.numpy.issubdtype(x.dtype, jax.numpy.floating)}, specs

    one = run(sharding.make_mesh(1, 1, jax.devices()[:1]))
    eight = run(sharding.make_mesh(2, 4))
    np.savez(sys.argv[1] + "/one.npz", **one[1])
    np.savez(sys.argv[1] + "/eight.npz", **eight[1])
    json.dump({"losses": [one[0], eight[0]], "specs": eight[2], "devices": jax.device_count()},
              sys.stdout)
""")


def test_eight_device_step_equals_one_device(tmp_path):
  """Two steps on a (data=2, fsdp=4) mesh of 8 CPU devices match the same steps on one device, in
  every array of the state (student, teacher EMA, AdamW moments): sharding changes the placement,
  not the math.

  AdamW's first moment after two steps is 0.19 g1 + 0.1 g2, so comparing it compares the
  gradients. Parameters are compared where the gradient is above rounding noise: a few elements
  have a gradient that is zero in exact arithmetic (|mu| ~ 1e-10, e.g. imaginary parts of
  EinFFT's second bias), and Adam turns their noise into +-lr steps on any device layout.
  """
  out = subprocess.run([sys.executable, "-c", STEP, str(tmp_path)], cwd=ROOT, capture_output=True,
                       text=True, env={**os.environ, "PYTHONPATH": ROOT}, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  r = json.loads(out.stdout)
  assert r["devices"] == 8
  np.testing.assert_allclose(r["losses"][0], r["losses"][1], rtol=1e-5)
  assert r["losses"][0][0] - r["losses"][0][1] > 1e-3  # the second step saw updated weights
  one, eight = np.load(tmp_path / "one.npz"), np.load(tmp_path / "eight.npz")
  moments = [k for k in one.files if k.startswith("optimizer/opt_state/1/mu/")]
  assert len(moments) > 40
  for k in moments + [k.replace("/mu/", "/nu/") for k in moments]:
    np.testing.assert_allclose(eight[k], one[k], rtol=1e-4, atol=1e-4 * np.abs(one[k]).max(),
                               err_msg=k)
  noisy = total = 0
  for k in moments:
    mu = np.abs(one[k])
    informative = mu >= 1e-6 * mu.max()
    noisy, total = noisy + (~informative).sum(), total + mu.size
    for model in ("student/", "teacher/"):
      p = model + k.removeprefix("optimizer/opt_state/1/mu/")
      # Within 2% of one Adam step (lr 4.4e-3): m / sqrt(v) magnifies the gradients' rounding
      # differences where two steps' gradients nearly cancel; the moments above are the tight
      # check of the gradients themselves.
      np.testing.assert_allclose(eight[p][informative], one[p][informative], rtol=1e-4,
                                 atol=1e-4, err_msg=p)
  assert noisy < 1e-3 * total, (noisy, total)
  # Parameters, teacher and AdamW moments were split over fsdp, e.g. the DINO head's first layer.
  specs = r["specs"]
  kernel = [k for k in specs if k.endswith("dino_head/mlp/0/kernel")]
  assert kernel and all("fsdp" in specs[k] for k in kernel), {k: specs[k] for k in kernel}
  assert any("opt_state" in k and "fsdp" in v for k, v in specs.items())


def test_koleo_scope_device_groups_by_device():
  """KoLeo per device (DINOv2): one group per device of the batch sharding, whose rows are that
  device's (koleo_loss(groups) equals a loop over them: tests/losses)."""
  c = mvhybrid_crc.get_config("smoke")
  assert step.objective(c, devices=8).koleo_groups == 8
  c.koleo_scope = "global"
  assert step.objective(c, devices=8).koleo_groups == 1
  c.koleo_scope = "host"
  with pytest.raises(ValueError, match="config.koleo_scope"):
    step.objective(c)
