import gzip
import os

import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

from ipr_jax import pretrained
from ipr_jax.data import digits, image_sudoku, sudoku
from ipr_jax.evaluation import digit_classifier as dc
from ipr_jax.evaluation import sudoku as sudoku_eval

SHARED_MNIST = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "mnist")


def _write_idx(path, arr, gz):
  header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
  data = header + arr.astype(np.uint8).tobytes()
  with (gzip.open if gz else open)(path + (".gz" if gz else ""), "wb") as f:
    f.write(data)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_dir_source_on_tiny_files(tmp_path, gz):
  rng = np.random.default_rng(0)
  arrays = {
    "train_images": rng.integers(0, 256, (7, 28, 28)),
    "train_labels": rng.integers(0, 10, 7),
    "test_images": rng.integers(0, 256, (3, 28, 28)),
    "test_labels": rng.integers(0, 10, 3),
  }
  for key, stem in digits.IDX_FILES.items():
    _write_idx(str(tmp_path / stem), arrays[key], gz)
  d = digits.load("idx_dir", str(tmp_path))
  np.testing.assert_array_equal(d["train"][0], arrays["train_images"])
  np.testing.assert_array_equal(d["test"][1], arrays["test_labels"])
  os.remove(tmp_path / (digits.IDX_FILES["test_labels"] + (".gz" if gz else "")))
  with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte"):
    digits.load("idx_dir", str(tmp_path))


@pytest.mark.skipif(not os.path.isdir(SHARED_MNIST), reason="no ../shared/data/mnist")
def test_idx_dir_source_on_real_mnist():
  d = digits.load("idx_dir", SHARED_MNIST)
  assert d["train"][0].shape == (60000, 28, 28) and d["test"][0].shape == (10000, 28, 28)
  assert set(np.unique(d["test"][1])) == set(range(10))


def test_tfds_source_with_mock_data():
  with tfds.testing.mock_data(num_examples=12):
    d = digits.load("tfds")
  assert d["train"][0].shape == (12, 28, 28) and d["train"][0].dtype == np.uint8


def test_sklearn_source_split_disjoint():
  d = digits.load("sklearn")
  assert d["train"][0].shape[1:] == (8, 8)
  tr = {x.tobytes() for x in d["train"][0]}
  overlap = sum(x.tobytes() in tr for x in d["test"][0])
  assert len(d["train"][0]) + len(d["test"][0]) == 1797 and overlap <= 2  # duplicates in source


def test_bad_sources():
  with pytest.raises(ValueError, match="digit source"):
    digits.load("emnist")
  with pytest.raises(ValueError, match="not a directory"):
    digits.load("idx_dir", "/nonexistent/mnist")


@pytest.mark.parametrize("source,cell,min_acc", [("sklearn", 8, 0.97), ("idx_dir", 28, 0.99)])
def test_shipped_classifier_and_ground_truth_boards(source, cell, min_acc):
  if f"digits_{source}" not in pretrained.available():
    pytest.skip(f"classifier for {source} not shipped")
  idx_dir = None
  if source == "idx_dir":
    if not os.path.isdir(SHARED_MNIST):
      pytest.skip("no MNIST directory")
    idx_dir = SHARED_MNIST
  apply, params, man = dc.load(source)
  assert man["test_accuracy"] >= min_acc
  imgs = image_sudoku.test_images(dc.banks(source, idx_dir)["test"], 200)
  assert imgs.shape == (200, 9 * cell, 9 * cell)
  x = jnp.asarray(digits.to_model(imgs))[..., None]
  m = sudoku_eval.image_metrics(apply, params, x, cell)
  assert float(m["valid"].mean()) >= 0.99
  with pytest.raises(ValueError, match="board images"):
    sudoku_eval.image_metrics(apply, params, x[:, :-1], cell)
  # a swapped pair of cells in one column breaks two rows
  board = sudoku.test_boards()[0].copy()
  board[0, 0], board[1, 0] = board[1, 0], board[0, 0]
  if board[0, 0] != board[1, 0]:
    bank = dc.banks(source, idx_dir)["test"]
    img = digits.compose_board(board, bank, np.random.default_rng(0))
    bad = sudoku_eval.image_metrics(
      apply, params, jnp.asarray(digits.to_model(img))[None, ..., None], cell
    )
    assert float(bad["duplicate_count"][0]) >= 2


def test_zero_goes_to_second_best():
  logits = jnp.array([[5.0, 1.0, 3.0] + [0.0] * 7, [0.0, 9.0] + [0.0] * 8])
  np.testing.assert_array_equal(dc.predict_digits(logits), [2, 1])
