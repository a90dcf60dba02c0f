import atexit
import os
import shutil
import sys
import tempfile

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

# tests compile far more than they run (tiny models, many shapes and configs): XLA's cheap
# compile mode (no LLVM backend optimisation) halves most of them on 2 CPU cores. Set in the
# environment so that the subprocess tests (kill drill, SIGTERM, fresh-process resume) compile
# the same way; JAX_DISABLE_MOST_OPTIMIZATIONS=0 restores XLA's defaults. The README test runs its
# blocks with the defaults, as a user would. Benchmarks and timings are never taken from tests.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
if "jax" in sys.modules:  # imported before this file (a plugin): jax read the variable already
  sys.modules["jax"].config.update(
    "jax_disable_most_optimizations", os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] not in ("0", "")
  )

# the held-out test sets are prepared by their TFDS builders on first use: into a fresh folder
# per test process (never the user's ~/tensorflow_datasets). pytest-xdist workers inherit the
# controller's environment, so a folder made here is marked and each worker makes its own
# (two workers preparing the same dataset in one folder would race).
if os.environ.get("TFDS_DATA_DIR") in (None, os.environ.get("IPR_JAX_TEST_TFDS_DIR")):
  folder = tempfile.mkdtemp(prefix="ipr_jax_tfds_")
  os.environ["TFDS_DATA_DIR"] = os.environ["IPR_JAX_TEST_TFDS_DIR"] = folder
  atexit.register(shutil.rmtree, folder, ignore_errors=True)

# one persistent XLA compilation cache for the whole test run: the controller makes the folder
# and xdist workers and the subprocess tests (kill drill, README, SIGTERM) inherit it, so a
# smoke config compiled in one process is loaded, not recompiled, in the next (the cache key is
# the HLO, the flags and the jax version: results are unchanged). An unreadable entry (a process
# SIGKILLed mid-write) is a warning and a recompile in jax. Set JAX_COMPILATION_CACHE_DIR to keep
# the cache between runs.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  cache = tempfile.mkdtemp(prefix="ipr_jax_xla_cache_")
  os.environ["JAX_COMPILATION_CACHE_DIR"] = cache
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
  atexit.register(shutil.rmtree, cache, ignore_errors=True)
