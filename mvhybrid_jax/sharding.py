"""The device mesh and the FSDP shardings of the training state, from config rules; the mesh
and path names serve evaluation too.

The mesh has two axes: "data" (replicas) and "fsdp" (parameters and optimiser state split across
devices, gathered for use: ZeRO-3 style). Batches are split over both axes, so every device sees
batch_size / device_count images. Because jit runs on global arrays, every reduction in the step
(Sinkhorn-Knopp's sums, the loss means, gradients) spans all devices of all hosts.

A rule is (regex, kind); the first regex found in an array's path (names joined by "/", e.g.
"student/backbone/blocks/3/mixer/in_proj/kernel") decides. kind "fsdp" splits the array's largest
dimension that the fsdp axis divides (big_vision's fsdp strategy); "replicate" keeps it whole.
Arrays under min_size elements stay whole: gathering them costs more than storing them.
"""

from __future__ import annotations

import math
import re

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

KINDS = ("fsdp", "replicate")


def make_mesh(data: int = -1, fsdp: int = 1, devices=None) -> Mesh:
  """A (data, fsdp) mesh over devices (default: all devices of all hosts); -1 on one axis takes
  the devices the other leaves."""
  devices = jax.devices() if devices is None else list(devices)
  n = len(devices)
  if data == -1 and fsdp == -1:
    raise ValueError("config.mesh: at most one of data, fsdp may be -1")
  if data == -1 or fsdp == -1:
    fixed = fsdp if data == -1 else data
    if fixed < 1 or n % fixed:
      raise ValueError(f"config.mesh: {fixed} does not divide the {n} devices")
    data, fsdp = (n // fixed, fsdp) if data == -1 else (data, n // fixed)
  if data * fsdp != n:
    raise ValueError(f"config.mesh: data={data} x fsdp={fsdp} must equal the {n} devices")
  auto = jax.sharding.AxisType.Auto
  return jax.make_mesh((data, fsdp), ("data", "fsdp"), axis_types=(auto, auto), devices=devices)


def path_name(path) -> str:
  """A pytree path as "a/b/0/c", without nnx's `.value`."""
  names = [str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path]
  return "/".join(n for n in names if n not in (".value", "value"))


def check_rules(rules) -> list[tuple[str, str]]:
  out = []
  for rule in rules:
    if len(rule) != 2 or rule[1] not in KINDS:
      raise ValueError(f"config.sharding.rules: expected (regex, kind) with kind in {KINDS}, "
                       f"got {tuple(rule)!r}")
    out.append((str(rule[0]), str(rule[1])))
  return out


def spec(name: str, shape, rules, fsdp_size: int, min_size: int) -> P:
  kind = next((k for pattern, k in rules if re.search(pattern, name)), "replicate")
  if kind == "replicate" or fsdp_size == 1 or math.prod(shape) < min_size:
    return P()
  for dim in sorted(range(len(shape)), key=lambda d: -shape[d]):  # largest first
    if shape[dim] % fsdp_size == 0:
      return P(*[("fsdp" if d == dim else None) for d in range(len(shape))])
  return P()


def state_shardings(state, mesh: Mesh, rules, min_size: int = 2**14):
  """NamedShardings for every array of a state pytree (an nnx.State or a nested dict, of arrays
  or of jax.ShapeDtypeStructs)."""
  rules = check_rules(rules)
  fsdp_size = mesh.shape["fsdp"]
  return jax.tree_util.tree_map_with_path(
      lambda path, x: NamedSharding(mesh, spec(path_name(path), x.shape, rules, fsdp_size,
                                               min_size)), state)


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """The leading (batch) dimension split over every device."""
  return NamedSharding(mesh, P(("data", "fsdp")))


def global_batch(batch, sharding: NamedSharding):
  """This host's part of the batch -> global arrays (each host passes its own rows)."""
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)),
                      batch)
