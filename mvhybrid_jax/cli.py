"""What train.py and eval.py share on the command line: flag parsing with clear config errors,
and quiet orbax logs."""

from __future__ import annotations

import logging
import sys

from absl import flags


def parse_flags(argv):
  """absl's parsing, with ml_collections' bare KeyError for an unknown --config.key turned into
  a message that names the flag."""
  try:
    return flags.FLAGS(argv)
  except (AttributeError, KeyError) as e:
    detail = e
    while isinstance(detail, BaseException) and detail.args:
      detail = detail.args[0]
    overrides = " ".join(a for a in argv if a.startswith("--config."))
    sys.exit(f"FATAL: {overrides}: the config has no key {str(detail).replace(chr(10), '; ')} "
             "(an override can only set a key that the --config file defines)")


class QuietOrbax(logging.Filter):
  """Orbax logs every file it writes at INFO; keep its warnings only."""

  def filter(self, record):
    return record.levelno >= logging.WARNING or "/orbax/" not in record.pathname
