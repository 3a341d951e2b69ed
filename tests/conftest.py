"""Shared test setup."""

import os
import shutil
import tempfile

from absl import flags

# grain's worker processes read absl flags; under pytest nothing parses them.
flags.FLAGS.mark_as_parsed()

# One persistent XLA compilation cache for the session, shared by this process and the train.py,
# eval.py and predict.py subprocesses the tests start (they inherit the environment): the many
# runs of the same tiny models compile once.
_JAX_CACHE = tempfile.mkdtemp(prefix="mvhybrid-jax-cache-")
os.environ["JAX_COMPILATION_CACHE_DIR"] = _JAX_CACHE

import jax  # noqa: E402  (after the environment it reads)

jax.config.update("jax_compilation_cache_dir", _JAX_CACHE)


def pytest_sessionfinish(session, exitstatus):
  del session, exitstatus
  shutil.rmtree(_JAX_CACHE, ignore_errors=True)
