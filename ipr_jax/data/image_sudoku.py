"""Image Sudoku (spec 5.1): solved boards drawn with handwritten digits, one per cell.

Boards are composed from a digit bank: the instances of each digit that our shipped classifier
reads correctly and most confidently (train bank from the train split, test bank from the test
split, so train and test digit instances are disjoint). Test item i uses
default_rng([COMPOSE_SEED, i]) for its instances.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ipr_jax.data import digits, sudoku

COMPOSE_SEED = 90_210


@functools.lru_cache(maxsize=4)
def banks(source: str, idx_dir: str | None = None) -> dict:
  """{'train': uint8[10, N_train, h, w], 'test': uint8[10, N_test, h, w]} for a digit source."""
  from ipr_jax.evaluation import digit_classifier as dc
  apply, params, man = dc.load("sklearn" if source == "sklearn" else "idx_dir")
  data = digits.load(source, idx_dir)
  f = jax.jit(lambda p, x: jax.nn.softmax(apply(p, x, None)))
  out = {}
  for split in ("train", "test"):
    images, labels = data[split]
    x = digits.to_model(images)[..., None]
    probs = np.concatenate([np.asarray(f(params, jnp.asarray(x[i:i + 4096])))
                            for i in range(0, len(x), 4096)])
    out[split] = digits.top_confident(images, labels, probs, man["bank_per_digit"][split])
  return out


def test_images(source: str, num: int, idx_dir: str | None = None) -> np.ndarray:
  """uint8[num, 9h, 9w] images of the first `num` held-out boards."""
  bank = banks(source, idx_dir)["test"]
  boards = sudoku.test_boards()[:num]
  return np.stack([digits.compose_board(b, bank, np.random.default_rng([COMPOSE_SEED, i]))
                   for i, b in enumerate(boards)])
