"""Digit sources for image Sudoku (method 5.1), each as uint8 images with labels, train/test
disjoint:
- `sklearn`: the 8x8 digits shipped with scikit-learn (offline default; 1797 images, a fixed
  seeded split of 1400 train / 397 test);
- `idx_dir`: a directory with the four MNIST IDX files, gzipped or not (28x28);
- `tfds`: TFDS `mnist` through `tfds.data_source` (needs the dataset prepared or a network).
"""

from __future__ import annotations

import gzip
import os

import numpy as np

from ipr_jax.data.pipeline import to_model  # noqa: F401  (re-exported)

SOURCES = ("sklearn", "idx_dir", "tfds")
IDX_FILES = {
  "train_images": "train-images-idx3-ubyte",
  "train_labels": "train-labels-idx1-ubyte",
  "test_images": "t10k-images-idx3-ubyte",
  "test_labels": "t10k-labels-idx1-ubyte",
}
SKLEARN_TRAIN = 1400


def _read_idx(path: str) -> np.ndarray:
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "rb") as f:
    data = f.read()
  ndim = data[3]
  dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
  return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _find(idx_dir: str, stem: str) -> str:
  for name in (stem + ".gz", stem):
    if os.path.exists(os.path.join(idx_dir, name)):
      return os.path.join(idx_dir, name)
  raise ValueError(f"idx_dir {idx_dir!r} is missing {stem} (or {stem}.gz)")


def load_idx_dir(idx_dir: str) -> dict:
  if not idx_dir or not os.path.isdir(idx_dir):
    raise ValueError(
      f"idx_dir {idx_dir!r} is not a directory: point it at a folder with the four "
      "MNIST IDX files (experiment configs: --config.data.idx_dir=DIR or the "
      "IPR_JAX_MNIST_DIR environment variable)"
    )
  arr = {k: _read_idx(_find(idx_dir, v)) for k, v in IDX_FILES.items()}
  return {
    "train": (arr["train_images"], arr["train_labels"].astype(np.int32)),
    "test": (arr["test_images"], arr["test_labels"].astype(np.int32)),
  }


def load_sklearn() -> dict:
  from sklearn.datasets import load_digits

  d = load_digits()
  images = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)
  order = np.random.default_rng(0).permutation(len(images))
  tr, te = order[:SKLEARN_TRAIN], order[SKLEARN_TRAIN:]
  return {
    "train": (images[tr], d.target[tr].astype(np.int32)),
    "test": (images[te], d.target[te].astype(np.int32)),
  }


def load_tfds(data_dir=None) -> dict:
  import tensorflow_datasets as tfds

  out = {}
  for split in ("train", "test"):
    src = tfds.data_source("mnist", split=split, data_dir=data_dir)
    items = [src[i] for i in range(len(src))]
    out[split] = (
      np.stack([np.asarray(it["image"])[..., 0] for it in items]).astype(np.uint8),
      np.asarray([int(it["label"]) for it in items], np.int32),
    )
  return out


def load(source: str, idx_dir: str | None = None, data_dir: str | None = None) -> dict:
  """{'train': (uint8[N, h, w], int32[N]), 'test': (...)} of the digit source."""
  if source == "sklearn":
    return load_sklearn()
  if source == "idx_dir":
    return load_idx_dir(idx_dir)
  if source == "tfds":
    return load_tfds(data_dir)
  raise ValueError(f"digit source must be one of {SOURCES}, got {source!r}")


def top_confident(images, labels, probs, per_digit: int) -> np.ndarray:
  """Digit bank uint8[10, per_digit, h, w]: the instances of each digit that the classifier
  reads correctly with the highest confidence (method 5.1's top-N)."""
  pred = probs.argmax(axis=1)
  bank = []
  for d in range(10):
    idx = np.flatnonzero((labels == d) & (pred == d))
    if len(idx) < per_digit:
      raise ValueError(
        f"only {len(idx)} confidently-correct instances of digit {d}; "
        f"lower per_digit (got {per_digit})"
      )
    idx = idx[np.argsort(-probs[idx, d], kind="stable")[:per_digit]]
    bank.append(images[idx])
  return np.stack(bank)


def board_cells(board: np.ndarray, bank: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """[81, ...] one random instance of `bank` [10, N, ...] per cell of a solved board (digits
  1..9), cells row-major: the bank may hold images or their per-cell latents."""
  picks = rng.integers(0, bank.shape[1], size=81)
  return bank[np.asarray(board).reshape(81), picks]


def compose_board(board: np.ndarray, bank: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """uint8[9h, 9w] image of a solved board (digits 1..9), one random bank instance per cell."""
  h, w = bank.shape[-2:]
  tiles = board_cells(board, bank, rng)
  return tiles.reshape(9, 9, h, w).transpose(0, 2, 1, 3).reshape(9 * h, 9 * w)
