"""Sudoku metrics (method 5.1) over decoded boards int[..., 9, 9] (digits 1..9); any leading dims,
so one call scores [B] samples or [rounds, B] at once. jnp and jit-able."""

from __future__ import annotations

import chex
import jax.numpy as jnp


def _units(onehot):
  """Digit counts of the 27 units: f32[..., 27, 9] from one-hot f32[..., 9, 9, 9]."""
  rows = onehot.sum(axis=-2)  # [..., 9 rows, 9 digits]
  cols = onehot.sum(axis=-3)  # [..., 9 cols, 9 digits]
  lead = onehot.shape[:-3]
  boxes = onehot.reshape(*lead, 3, 3, 3, 3, 9).sum(axis=(-4, -2)).reshape(*lead, 9, 9)
  return jnp.concatenate([rows, cols, boxes], axis=-2)


def duplicate_count(digits):
  """sum over rows, columns, boxes and digits d of |count(d) - 1|; 0 iff valid. i32[...]."""
  chex.assert_shape(digits, (..., 9, 9))
  chex.assert_type(digits, int)
  onehot = (digits[..., None] == jnp.arange(1, 10)).astype(jnp.int32)
  return jnp.abs(_units(onehot) - 1).sum(axis=(-1, -2))


def is_valid(digits):
  """bool[...]: the board is a valid solved Sudoku."""
  return duplicate_count(digits) == 0


def matches_givens(digits, given_digits, given_mask):
  """bool[...]: every given cell (given_mask bool[..., 81]) holds its given digit."""
  chex.assert_equal_shape([digits, given_digits])
  chex.assert_shape(given_mask, (*digits.shape[:-2], 81))
  same = (digits == given_digits).reshape(*digits.shape[:-2], 81)
  return jnp.all(same | ~given_mask, axis=-1)


def decode_symbolic(x):
  """f32[..., 9, 9, 9] continuous cells -> int32[..., 9, 9] digits by argmax (1..9)."""
  if x.shape[-3:] != (9, 9, 9):
    raise ValueError(f"symbolic Sudoku samples must be [..., 9, 9, 9], got {x.shape}")
  return jnp.argmax(x, axis=-1).astype(jnp.int32) + 1


def symbolic_metrics(x):
  """Per-sample metrics of symbolic samples f32[..., 9, 9, 9]: {'valid', 'duplicate_count'}."""
  digits = decode_symbolic(x)
  dup = duplicate_count(digits)
  return {"valid": (dup == 0).astype(jnp.float32), "duplicate_count": dup.astype(jnp.float32)}


def image_metrics(apply, params, x, cell: int):
  """Per-sample {'valid', 'duplicate_count'} of image boards f32[..., 9 cell, 9 cell, 1] read by
  a digit classifier `apply(params, tiles, None) -> logits` (0 -> second best, method 5.1)."""
  from ipr_jax.evaluation import digit_classifier

  dup = duplicate_count(digit_classifier.board_digits(apply, params, x, cell))
  return {"valid": (dup == 0).astype(jnp.float32), "duplicate_count": dup.astype(jnp.float32)}
