"""What keeps a workdir consistent: one writer at a time, and logs that hold each step once."""

from __future__ import annotations

import json
import logging
import os
import socket
import time

log = logging.getLogger(__name__)
LOCK = "lock"


class Busy(RuntimeError):
  """The workdir is held by another run."""


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # alive, another user's
    return True
  return True


class Lock:
  """with Lock(workdir): ... -- workdir/lock names the holder (host, pid, start time).

  A second run on the workdir is refused, naming the holder. A lock left by a process that is
  gone (same host, pid not running) is taken over with a warning; one from another host cannot
  be checked from here, so the error says how to remove it if that run is dead.
  """

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, LOCK)
    self.me = {"host": socket.gethostname(), "pid": os.getpid(),
               "since": time.strftime("%Y-%m-%d %H:%M:%S")}

  def _create(self) -> bool:
    try:
      fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
      return False
    with os.fdopen(fd, "w") as f:
      json.dump(self.me, f)
    return True

  def __enter__(self):
    if self._create():
      return self
    try:
      with open(self.path) as f:
        holder = json.load(f)
      host, pid = holder["host"], int(holder["pid"])
    except (OSError, ValueError, KeyError, TypeError):
      holder, host, pid = None, None, None
    if holder is not None and (host != self.me["host"] or _alive(pid)):
      where = "this host" if host == self.me["host"] else f"host {host}"
      raise Busy(
          f"{os.path.dirname(self.path)}: another run (pid {pid} on {where}, since "
          f"{holder.get('since', '?')}) is writing this workdir; wait for it, or use another "
          f"--workdir" + ("" if host == self.me["host"] else
                          f" (if that run is dead, delete {self.path})"))
    log.warning("%s: taking over a stale lock (%s)", self.path,
                f"pid {pid} on this host is not running" if holder else "unreadable")
    os.remove(self.path)
    if not self._create():
      raise Busy(f"{self.path}: another run took the workdir at the same moment")
    return self

  def __exit__(self, *exc):
    try:
      os.remove(self.path)
    except FileNotFoundError:
      pass
    return False


def keep_steps_up_to(path: str, step: int) -> None:
  """Drops the rows of a JSON-lines log after `step` (written by a run that went on past the
  checkpoint it is resumed from), so that the resumed run's rows are not duplicates. Rewrites
  through a temporary file."""
  if not os.path.exists(path):
    return
  with open(path) as f:
    lines = f.readlines()
  kept = []
  for line in lines:
    try:
      row = json.loads(line)
    except ValueError:  # a row cut short by a crash
      continue
    if row.get("step", 0) <= step:
      kept.append(json.dumps(row) + "\n")
  if len(kept) == len(lines):
    return
  with open(path + ".tmp", "w") as f:
    f.writelines(kept)
  os.replace(path + ".tmp", path)


class SkippedRecords:
  """The records the data pipeline could not decode, each named once: in the log and as a row
  {"step", "index", "record", "reason"} of a JSON-lines file. More distinct ones than `limit`
  is an error listing them. A resumed run starts from the rows up to its step."""

  def __init__(self, path: str, describe, limit: int, step: int):
    self.path, self.describe, self.limit = path, describe, limit
    keep_steps_up_to(path, step)
    self.named = {}
    if os.path.exists(path):
      with open(path) as f:
        self.named = {row["index"]: row["record"] for row in map(json.loads, f)}

  def __len__(self):
    return len(self.named)

  def add(self, step: int, skipped) -> None:
    for index, reason in skipped:
      index = int(index)
      if index in self.named:  # met again in a later epoch
        continue
      self.named[index] = self.describe(index)
      log.warning("skipped %s: %s", self.named[index], reason)
      with open(self.path, "a") as f:
        f.write(json.dumps({"step": step, "index": index, "record": self.named[index],
                            "reason": reason}) + "\n")

  def over_limit(self) -> bool:
    return len(self.named) > self.limit

  def error(self, key: str, records: int) -> ValueError:
    names = list(self.named.values())
    shown = "; ".join(names[:10]) + (f"; and {len(names) - 10} more" if len(names) > 10 else "")
    return ValueError(f"{key}: {len(names)} unreadable records is more than the {self.limit} "
                      f"allowed of the {records} this host reads: {shown} (listed in "
                      f"{self.path}); repair or re-pack the data, or raise {key}")
