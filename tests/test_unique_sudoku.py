"""Unique-solution Sudoku: the exact solver against plain enumeration, minimality and levels
proved by the solver, determinism, the TFDS builder, the training mix and bad inputs."""

import numpy as np
import pytest

from ipr_jax import tfds_builders
from ipr_jax.data import sudoku
from ipr_jax.data import unique_sudoku as us
from ipr_jax.evaluation import sudoku as sudoku_eval


def _enumerate(puzzle, limit=10):
  """Solutions counted by plain backtracking in row-major order (no propagation, no MRV)."""
  grid = [int(v) for v in np.asarray(puzzle).reshape(81)]
  found = [0]

  def ok(c, d):
    r, k = divmod(c, 9)
    b0 = (r // 3) * 27 + (k // 3) * 3
    box = [b0 + 9 * i + j for i in range(3) for j in range(3)]
    peers = [r * 9 + j for j in range(9)] + [i * 9 + k for i in range(9)] + box
    return all(grid[p] != d for p in peers if p != c)

  def go(c):
    if found[0] >= limit:
      return
    if c == 81:
      found[0] += 1
      return
    if grid[c]:
      go(c + 1) if ok(c, grid[c]) else None
      return
    for d in range(1, 10):
      if ok(c, d):
        grid[c] = d
        go(c + 1)
        grid[c] = 0

  go(0)
  return found[0]


def test_solver_counts_like_plain_enumeration():
  rng = np.random.default_rng(0)
  for i in range(12):
    board = sudoku.test_boards()[i].reshape(81)
    blank = rng.choice(81, int(rng.integers(10, 30)), replace=False)
    puzzle = board.copy()
    puzzle[blank] = 0
    for limit in (2, 10):
      got = us.count_solutions(puzzle, limit)
      assert got == _enumerate(puzzle, limit)
    count, nodes, first = us.solve_stats(puzzle, 1)
    assert count == 1 and bool(sudoku_eval.is_valid(np.asarray(first, np.int32)))
    np.testing.assert_array_equal(first.reshape(81)[puzzle > 0], puzzle[puzzle > 0])


def test_solver_sees_two_solutions_and_clashes():
  # a swap of two digits in two rows and two columns of the same band is a second solution
  board = sudoku.test_boards()[3].copy()
  found = None
  for r1 in range(9):
    for r2 in range(r1 + 1, (r1 // 3) * 3 + 3):
      for c1 in range(9):
        for c2 in range(c1 + 1, 9):
          a, b = board[r1, c1], board[r1, c2]
          if board[r2, c1] == b and board[r2, c2] == a:
            found = (r1, r2, c1, c2)
  assert found is not None
  r1, r2, c1, c2 = found
  puzzle = board.copy()
  for r, c in ((r1, c1), (r1, c2), (r2, c1), (r2, c2)):
    puzzle[r, c] = 0
  assert us.count_solutions(puzzle, 10) == 2 == _enumerate(puzzle)
  clash = board.copy()
  clash[0, 0] = clash[0, 1]
  assert us.count_solutions(clash) == 0 and us.solve_stats(clash)[2] is None


@pytest.mark.parametrize("level", us.LEVELS)
def test_levels_are_unique_minimal_and_deterministic(level):
  for i in range(4):
    board = sudoku.test_boards()[i].reshape(81)
    givens = us.test_givens(i, level)
    puzzle = np.where(givens, board, 0)
    assert us.count_solutions(puzzle, 2) == 1
    for c in np.flatnonzero(givens):  # minimal: each given is needed
      fewer = puzzle.copy()
      fewer[c] = 0
      assert us.count_solutions(fewer, 2) == 2
    if level == "deep":
      assert not us.singles_solvable(puzzle)
    # per index, whatever was asked before (the cache cleared: regenerated from its seed)
    us._test_item.cache_clear()
    np.testing.assert_array_equal(us.test_givens(i, level), givens)


def test_singles_solvable_on_easy_and_empty():
  board = sudoku.test_boards()[0].reshape(81)
  one_gap = board.copy()
  one_gap[40] = 0
  assert us.singles_solvable(one_gap)
  assert not us.singles_solvable(np.zeros(81, int))


def test_bad_inputs():
  with pytest.raises(ValueError, match="0 \\(empty\\) or digits"):
    us.count_solutions(np.full(81, 10))
  bad = sudoku.test_boards()[0].copy()
  bad[0, 0] = bad[0, 1]
  with pytest.raises(ValueError, match="valid solved Sudoku"):
    us.minimal_givens(bad, np.random.default_rng(0))
  with pytest.raises(ValueError, match="level must be one of"):
    us.level_givens(sudoku.test_boards()[0], "extreme", (0,))
  with pytest.raises(ValueError, match="test set has"):
    us.test_givens(sudoku.NUM_TEST, "minimal")
  with pytest.raises(ValueError, match="unique_fraction"):
    sudoku.TrainStream(0, 4, 8, unique_fraction=0.5)


def test_symmetries_keep_puzzles_unique():
  rng = np.random.default_rng(1)
  boards = sudoku.test_boards()[:3]
  givens = np.stack([us.test_givens(i, "minimal") for i in range(3)])
  moved_boards, moved_givens = sudoku.augment(rng, boards, givens)
  for b, g, g0 in zip(moved_boards, moved_givens, givens):
    assert bool(sudoku_eval.is_valid(b.astype(np.int32))) and g.sum() == g0.sum()
    assert us.count_solutions(np.where(g, b.reshape(81), 0), 2) == 1


def test_training_mix_replaces_a_share_with_unique_puzzles():
  unique = (sudoku.test_boards()[:4], np.stack([us.test_givens(i, "minimal") for i in range(4)]))
  plain = sudoku.TrainStream(5, 16, 32).batch(2)
  mixed = sudoku.TrainStream(5, 16, 32, unique, unique_fraction=0.5).batch(2)
  boards = np.argmax(mixed["x"], axis=-1) + 1
  same = [np.array_equal(plain["x"][i], mixed["x"][i]) for i in range(16)]
  assert 0 < sum(same) < 16  # the rest of the batch is the default stream's
  for i in np.flatnonzero(~np.array(same)):
    puzzle = np.where(mixed["mask"][i] == 0, boards[i].reshape(81), 0)
    assert us.count_solutions(puzzle, 2) == 1
  every = sudoku.TrainStream(5, 8, 32, unique, unique_fraction=1.0).batch(0)
  for x, m in zip(every["x"], every["mask"]):
    assert us.count_solutions(np.where(m == 0, np.argmax(x, -1).reshape(81) + 1, 0), 2) == 1


def test_unique_sudoku_builder(tmp_path):
  b = tfds_builders.UniqueSudoku(config="deep", num_train=2, num_test=3, data_dir=str(tmp_path))
  assert b.builder_config.name == "deep_train2_test3"
  b.download_and_prepare()
  ds = b.as_data_source()
  item = ds["test"][2]
  np.testing.assert_array_equal(item["board"], sudoku.test_boards()[2])
  np.testing.assert_array_equal(item["givens"], us.test_givens(2, "deep"))
  assert int(item["num_givens"]) == item["givens"].sum() and not bool(item["singles"])
  np.testing.assert_array_equal(ds["train"][1]["givens"], us.train_givens(1, "deep"))
  with pytest.raises(ValueError, match="config must be one of"):
    tfds_builders.UniqueSudoku(config="extreme", data_dir=str(tmp_path))
