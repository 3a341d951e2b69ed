"""Shared test setup."""

from absl import flags

# grain's worker processes read absl flags; under pytest nothing parses them.
flags.FLAGS.mark_as_parsed()
