"""Image Sudoku (method 5.1): solved boards drawn with handwritten digits, one per cell.

Boards are composed from a digit bank: the instances of each digit that our shipped classifier
reads correctly and most confidently (train bank from the train split, test bank from the test
split, so train and test digit instances are disjoint; built by
`ipr_jax.evaluation.digit_classifier.banks`, so this module needs no classifier). Item i of a stream (test 0, train 1,
validation 7) uses default_rng([COMPOSE_SEED, i, stream]) for its instances (`compose_item`).
"""

from __future__ import annotations

import numpy as np

from ipr_jax.data import digits, sudoku

COMPOSE_SEED = 90_210


STREAMS = {"test": 0, "train": 1, "validation": 7}


def compose_item(board, bank, index: int, stream: str = "test") -> np.ndarray:
  """uint8[9h, 9w] image of item `index` of a stream, deterministic per (index, stream)."""
  rng = np.random.default_rng([COMPOSE_SEED, index, STREAMS[stream]])
  return digits.compose_board(board, bank, rng)


def test_images(bank: np.ndarray, num: int) -> np.ndarray:
  """uint8[num, 9h, 9w] images of the first `num` held-out boards drawn from the test bank
  (`ipr_jax.evaluation.digit_classifier.banks(source)["test"]`)."""
  boards = sudoku.test_boards()[:num]
  return np.stack([compose_item(b, bank, i) for i, b in enumerate(boards)])
