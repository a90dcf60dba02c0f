import os

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

# the held-out test sets are prepared by their TFDS builders on first use: into a fresh folder
# per test process (never the user's ~/tensorflow_datasets). pytest-xdist workers inherit the
# controller's environment, so a folder made here is marked and each worker makes its own
# (two workers preparing the same dataset in one folder would race).
if os.environ.get("TFDS_DATA_DIR") in (None, os.environ.get("IPR_JAX_TEST_TFDS_DIR")):
  import atexit
  import shutil
  import tempfile
  folder = tempfile.mkdtemp(prefix="ipr_jax_tfds_")
  os.environ["TFDS_DATA_DIR"] = os.environ["IPR_JAX_TEST_TFDS_DIR"] = folder
  atexit.register(shutil.rmtree, folder, ignore_errors=True)
