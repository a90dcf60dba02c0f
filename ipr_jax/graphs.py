"""Region dependency graphs: bool[R, R], entry [i, j] = region i may attend to region j.

Used by the region transformer as its attention mask. Every graph includes the diagonal.
"""

from __future__ import annotations

import numpy as np


def full(num_regions: int) -> np.ndarray:
  """Every region attends to every region."""
  return np.ones((num_regions, num_regions), bool)


def sudoku_position_ids() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(row, column, box) index of each of the 81 cells, row-major, each int[81] in 0..8."""
  cell = np.arange(81)
  row, col = cell // 9, cell % 9
  return row, col, (row // 3) * 3 + col // 3


def sudoku_peers() -> np.ndarray:
  """bool[81, 81]: a cell and its 20 peers (same row, column or 3x3 box)."""
  row, col, box = sudoku_position_ids()
  same = lambda a: a[:, None] == a[None, :]
  return same(row) | same(col) | same(box)


def grid_neighbourhood(grid_h: int, grid_w: int, radius: int) -> np.ndarray:
  """bool[R, R]: regions within Chebyshev distance `radius` on a grid_h x grid_w grid."""
  if radius < 0:
    raise ValueError(f"radius must be >= 0, got {radius}")
  r, c = np.divmod(np.arange(grid_h * grid_w), grid_w)
  return (np.abs(r[:, None] - r[None, :]) <= radius) & (np.abs(c[:, None] - c[None, :]) <= radius)
