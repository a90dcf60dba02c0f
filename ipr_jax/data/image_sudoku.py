"""Image Sudoku (spec 5.1): solved boards drawn with handwritten digits, one per cell.

Boards are composed from a digit bank: the instances of each digit that our shipped classifier
reads correctly and most confidently (train bank from the train split, test bank from the test
split, so train and test digit instances are disjoint). Item i of a stream (test 0, train 1,
validation 7) uses default_rng([COMPOSE_SEED, i, stream]) for its instances (`compose_item`).
"""
from __future__ import annotations

import functools

import numpy as np

from ipr_jax.data import digits, sudoku

COMPOSE_SEED = 90_210


@functools.lru_cache(maxsize=4)
def banks(source: str, idx_dir: str | None = None) -> dict:
  """{'train': uint8[10, N_train, h, w], 'test': uint8[10, N_test, h, w]} for a digit source."""
  from ipr_jax.evaluation import digit_classifier as dc
  apply, params, man = dc.load("sklearn" if source == "sklearn" else "idx_dir")
  data = digits.load(source, idx_dir)
  out = {}
  for split in ("train", "test"):
    images, labels = data[split]
    probs = dc.probabilities(apply, params, images)
    out[split] = digits.top_confident(images, labels, probs, man["bank_per_digit"][split])
  return out


STREAMS = {"test": 0, "train": 1, "validation": 7}


def compose_item(board, bank, index: int, stream: str = "test") -> np.ndarray:
  """uint8[9h, 9w] image of item `index` of a stream, deterministic per (index, stream)."""
  rng = np.random.default_rng([COMPOSE_SEED, index, STREAMS[stream]])
  return digits.compose_board(board, bank, rng)


def test_images(source: str, num: int, idx_dir: str | None = None) -> np.ndarray:
  """uint8[num, 9h, 9w] images of the first `num` held-out boards."""
  bank = banks(source, idx_dir)["test"]
  boards = sudoku.test_boards()[:num]
  return np.stack([compose_item(b, bank, i) for i, b in enumerate(boards)])
