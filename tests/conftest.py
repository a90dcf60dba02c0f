import os

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

# the held-out test sets are prepared by their TFDS builders on first use: into a fresh folder
# per test session (never the user's ~/tensorflow_datasets)
if "TFDS_DATA_DIR" not in os.environ:
  import atexit
  import shutil
  import tempfile
  os.environ["TFDS_DATA_DIR"] = tempfile.mkdtemp(prefix="ipr_jax_tfds_")
  atexit.register(shutil.rmtree, os.environ["TFDS_DATA_DIR"], ignore_errors=True)
