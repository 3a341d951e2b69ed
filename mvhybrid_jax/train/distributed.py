"""Joining a multi-host run: jax.distributed from flags, the environment, or the cluster.

Call before anything touches a JAX device. In order:
  1. explicit arguments (train.py's --coordinator_address, --num_processes, --process_id);
  2. the environment: JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID;
  3. a SLURM job step or an Open MPI launch with more than one task: JAX reads the coordinator,
     process count and id from the cluster's variables.
Otherwise the run is single-process and nothing happens.
"""

from __future__ import annotations

import logging
import os

import jax

log = logging.getLogger(__name__)


def _env_int(name: str) -> int | None:
  value = os.environ.get(name)
  if value is None:
    return None
  try:
    return int(value)
  except ValueError:
    raise ValueError(f"{name}: expected an integer, got {value!r}") from None


def cluster_tasks() -> int:
  """Tasks of the SLURM step or Open MPI launch this process belongs to (1 if none)."""
  for name in ("SLURM_STEP_NUM_TASKS", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"):
    if os.environ.get(name):
      return _env_int(name)
  return 1


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> bool:
  """Joins the multi-host run if there is one; returns whether it did."""
  coordinator_address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS")
  num_processes = num_processes if num_processes is not None else _env_int("JAX_NUM_PROCESSES")
  process_id = process_id if process_id is not None else _env_int("JAX_PROCESS_ID")
  explicit = (coordinator_address, num_processes, process_id)
  if any(v is not None for v in explicit):
    if any(v is None for v in explicit) and cluster_tasks() == 1:
      raise ValueError("--coordinator_address, --num_processes and --process_id (or "
                       "JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID) go together; "
                       f"got {coordinator_address!r}, {num_processes!r}, {process_id!r}")
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
  elif cluster_tasks() > 1:
    jax.distributed.initialize()
  else:
    return False
  log.info("process %d of %d; %d local of %d devices", jax.process_index(), jax.process_count(),
           jax.local_device_count(), jax.device_count())
  return True
