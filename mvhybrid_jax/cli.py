"""What train.py, eval.py and predict.py share on the command line: flag parsing with clear
config errors, one-line errors with exit codes a scheduler can act on, and quiet orbax logs."""

from __future__ import annotations

import contextlib
import errno
import logging
import sys
import traceback

from absl import app, flags

from mvhybrid_jax.train import trainer, workdir

flags.DEFINE_bool("verbose", False, "On an error, print its traceback, not only its message.")

# Exit codes (README, "When a run fails").
FINISHED, CRASHED, REFUSED, DIVERGED, PREEMPTED = 0, 1, 2, 3, 75


@contextlib.contextmanager
def named_config_keys(argv):
  """ml_collections' bare KeyError for an unknown --config.key, turned into an exit with a
  message that names the flag."""
  try:
    yield
  except (AttributeError, KeyError) as e:
    detail = e
    while isinstance(detail, BaseException) and detail.args:
      detail = detail.args[0]
    overrides = " ".join(a for a in argv if a.startswith("--config."))
    sys.exit(f"FATAL: {overrides}: the config has no key {str(detail).replace(chr(10), '; ')} "
             "(an override can only set a key that the --config file defines)")


def parse_flags(argv):
  """absl's parsing, with an unknown --config.key named (named_config_keys)."""
  with named_config_keys(argv):
    return flags.FLAGS(argv)


class QuietOrbax(logging.Filter):
  """Orbax logs every file it writes at INFO; keep its warnings only."""

  def filter(self, record):
    return record.levelno >= logging.WARNING or "/orbax/" not in record.pathname


def _no_space(e: BaseException) -> bool:
  """Whether a full disk (or quota) is behind e, however deep the libraries chained it."""
  while e is not None:
    if (isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)) \
        or "No space left on device" in str(e):
      return True
    e = e.__cause__ or e.__context__
  return False


def exit_code(e: BaseException) -> tuple[int, str]:
  """(exit code, one-line message) for an error that ended a command; (CRASHED, "") for an
  unexpected one, whose traceback is worth reading."""
  if isinstance(e, trainer.Preempted):
    return PREEMPTED, f"preempted: {e}"
  if isinstance(e, FloatingPointError):
    return DIVERGED, f"diverged: {e}"
  if _no_space(e):
    return CRASHED, (f"no space left on device ({e}); free some, then run the same command to "
                     "resume from the last checkpoint")
  if isinstance(e, (ValueError, workdir.Busy)):
    return REFUSED, str(e)
  if isinstance(e, OSError):
    return CRASHED, str(e)
  return CRASHED, ""


def run(main) -> None:
  """app.run(main) with our flag parsing, where an error ends in one line on stderr (with its
  traceback only under --verbose) and the exit code says what happened."""
  def wrapped(argv):
    try:
      main(argv)
    except Exception as e:  # noqa: BLE001 -- mapped to an exit code, or re-raised
      code, message = exit_code(e)
      if not message:
        raise
      if flags.FLAGS.verbose:
        traceback.print_exc()
      print(f"{'' if code == PREEMPTED else 'FATAL: '}{message}", file=sys.stderr, flush=True)
      sys.exit(code)

  app.run(wrapped, flags_parser=parse_flags)
