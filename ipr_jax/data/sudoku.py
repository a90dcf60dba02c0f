"""Sudoku boards: uniformly shuffled randomised backtracking, seeded; held-out test set; givens.

Splits by number of given cells g (method 5.1): hard 0-26, medium 27-53, easy 54-80 (and 81 for
correction experiments). Test items are deterministic per (split, index): one generator
`default_rng([GIVENS_SEED, lo, hi, index % 2**32])` draws g and the given cells, so items are
independent of batch position and of each other (fixing the reference's seeding, method 7.2).
Training boards come from a disjoint seed stream and are filtered against the test set.
"""

from __future__ import annotations

import functools

import numpy as np

SPLITS = {"hard": (0, 26), "medium": (27, 53), "easy": (54, 80), "full": (81, 81)}
TEST_SEED = 20_260_517
TRAIN_SEED = 7
GIVENS_SEED = 31_337
NUM_TEST = 2000

_ROW = np.arange(81) // 9
_COL = np.arange(81) % 9
_BOX = (_ROW // 3) * 3 + _COL // 3


def generate_solved(rng: np.random.Generator) -> np.ndarray:
  """A random valid solved grid, int8[9, 9] with digits 1..9 (randomised backtracking)."""
  grid = np.zeros(81, np.int8)
  rows, cols, boxes = [0] * 9, [0] * 9, [0] * 9
  orders = [rng.permutation(9) + 1 for _ in range(81)]

  def fill(cell: int) -> bool:
    if cell == 81:
      return True
    r, c, b = _ROW[cell], _COL[cell], _BOX[cell]
    used = rows[r] | cols[c] | boxes[b]
    for d in orders[cell]:
      bit = 1 << int(d)
      if not used & bit:
        rows[r] |= bit
        cols[c] |= bit
        boxes[b] |= bit
        grid[cell] = d
        if fill(cell + 1):
          return True
        rows[r] ^= bit
        cols[c] ^= bit
        boxes[b] ^= bit
    grid[cell] = 0
    return False

  fill(0)
  return grid.reshape(9, 9)


def check_split(lo: int, hi: int) -> None:
  if not (0 <= lo <= hi <= 81) or int(lo) != lo or int(hi) != hi:
    raise ValueError(f"given-cell range must satisfy 0 <= lo <= hi <= 81, got ({lo}, {hi})")


def split_range(split) -> tuple[int, int]:
  """'hard' | 'medium' | 'easy' | 'full' or an inclusive (lo, hi) given-cell range."""
  if isinstance(split, str):
    if split not in SPLITS:
      raise ValueError(f"split must be one of {tuple(SPLITS)} or (lo, hi), got {split!r}")
    return SPLITS[split]
  lo, hi = split
  check_split(lo, hi)
  return int(lo), int(hi)


@functools.lru_cache(maxsize=4)
def test_boards(num: int = NUM_TEST) -> np.ndarray:
  """The fixed held-out test set: int8[num, 9, 9], board i from default_rng([TEST_SEED, i])."""
  return np.stack([generate_solved(np.random.default_rng([TEST_SEED, i])) for i in range(num)])


@functools.lru_cache(maxsize=4)
def _test_keys(num: int = NUM_TEST) -> frozenset:
  return frozenset(b.tobytes() for b in test_boards(num))


def train_board(index: int) -> np.ndarray:
  """Training board `index` (deterministic), never equal to a held-out test board."""
  for attempt in range(100):
    board = generate_solved(np.random.default_rng([TRAIN_SEED, index, attempt]))
    if board.tobytes() not in _test_keys():
      return board
  raise RuntimeError("could not draw a training board outside the test set")


def test_givens(index: int, split) -> np.ndarray:
  """bool[81] given cells of test item `index` in `split` (deterministic per index)."""
  lo, hi = split_range(split)
  rng = np.random.default_rng([GIVENS_SEED, lo, hi, index % 2**32])
  g = int(rng.integers(lo, hi + 1))
  given = np.zeros(81, bool)
  given[rng.choice(81, g, replace=False)] = True
  return given


def test_set(split, num: int, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """(boards int8[num, 9, 9], givens bool[num, 81]) of test items offset..offset+num-1."""
  if num + offset > NUM_TEST:
    raise ValueError(f"the test set has {NUM_TEST} boards; asked for {offset}..{offset + num}")
  boards = test_boards()[offset : offset + num]
  givens = np.stack([test_givens(offset + i, split) for i in range(num)])
  return boards, givens


def random_givens(rng: np.random.Generator, batch: int) -> np.ndarray:
  """Training masks: g ~ U{0..80}, a uniform g-subset of cells per board. bool[batch, 81]."""
  g = rng.integers(0, 81, size=batch)
  ranks = np.argsort(np.argsort(rng.random((batch, 81)), axis=1), axis=1)
  return ranks < g[:, None]


def _symmetry(rng: np.random.Generator):
  """One random validity-preserving symmetry: (digit relabelling int8[10], row order int[9],
  column order int[9], transpose)."""
  relabel = np.concatenate([[0], rng.permutation(9) + 1]).astype(np.int8)
  rows = (
    rng.permutation(3)[:, None] * 3 + np.stack([rng.permutation(3) for _ in range(3)])
  ).ravel()
  cols = (
    rng.permutation(3)[:, None] * 3 + np.stack([rng.permutation(3) for _ in range(3)])
  ).ravel()
  return relabel, rows, cols, rng.random() < 0.5


def augment(rng: np.random.Generator, boards: np.ndarray, cells: np.ndarray | None = None):
  """Validity-preserving symmetries: digit relabelling, row/column permutations within bands
  and stacks, band and stack permutations, transposition. int8[B, 9, 9] -> int8[B, 9, 9].
  With `cells` (bool[B, 81], e.g. a puzzle's givens) the same cell moves apply to them too and
  (boards, cells) is returned: a unique puzzle stays unique."""
  out = np.empty_like(boards)
  moved = None if cells is None else np.empty_like(cells)
  for i, b in enumerate(boards):
    relabel, rows, cols, transpose = _symmetry(rng)
    b = relabel[b][rows][:, cols]
    out[i] = b.T if transpose else b
    if cells is not None:
      m = cells[i].reshape(9, 9)[rows][:, cols]
      moved[i] = (m.T if transpose else m).reshape(81)
  return out if cells is None else (out, moved)


def to_symbolic(boards: np.ndarray) -> np.ndarray:
  """int[..., 9, 9] digits 1..9 -> f32[..., 9, 9, 9] one-hot scaled to [-1, 1]."""
  return 2.0 * np.eye(9, dtype=np.float32)[np.asarray(boards) - 1] - 1.0


VAL_SEED = 424_242


def validation_set(split, num: int) -> tuple[np.ndarray, np.ndarray]:
  """Puzzles for model selection during training: their own seed stream, not the test set."""
  lo, hi = split_range(split)
  boards = np.stack([generate_solved(np.random.default_rng([VAL_SEED, i])) for i in range(num)])
  givens = np.stack([test_givens(-1 - i, (lo, hi)) for i in range(num)])
  return boards, givens


class TrainStream:
  """Seeded symbolic training batches {x f32[B,9,9,9], mask f32[B,81] (1 = unknown)}.

  `batch(step)` depends only on (seed, step), so a resumed run sees the same data as an
  uninterrupted one. Boards come from a pool of `pool_size` backtracking boards (disjoint from
  the test set), re-drawn through `augment` every time; a variant equal to a test board is
  re-drawn. Givens: g ~ U{0..80} random cells (`random_givens`); with `unique` = (boards
  int8[P, 9, 9], givens bool[P, 81]) of puzzles with one solution (ipr_jax.data.unique_sudoku),
  a `unique_fraction` of each batch is those puzzles instead (board and givens through the same
  symmetry), half of them as they are, half with k ~ U{0..81-g} more random givens.
  """

  def __init__(
    self,
    seed: int,
    batch_size: int,
    pool_size: int = 5000,
    unique=None,
    unique_fraction: float = 0.0,
  ):
    if not 0.0 <= unique_fraction <= 1.0:
      raise ValueError(f"unique_fraction must be in [0, 1], got {unique_fraction}")
    if unique_fraction > 0 and unique is None:
      raise ValueError("unique_fraction > 0 needs the unique puzzles (boards, givens)")
    self.seed, self.batch_size = seed, batch_size
    self.unique, self.unique_fraction = unique, unique_fraction
    self.pool = np.stack([train_board(i) for i in range(pool_size)])

  def batch(self, step: int) -> dict:
    rng = np.random.default_rng([TRAIN_SEED, self.seed, step])
    idx = rng.integers(0, len(self.pool), self.batch_size)
    boards = augment(rng, self.pool[idx])
    test = _test_keys()
    for i, b in enumerate(boards):
      while b.tobytes() in test:
        b = augment(rng, self.pool[idx[i]][None])[0]
      boards[i] = b
    mask = ~random_givens(rng, self.batch_size)
    if self.unique_fraction > 0:  # its own stream: the default batches stay as they were
      self._mix_unique(np.random.default_rng([TRAIN_SEED, self.seed, step, 1]), boards, mask)
    return {"x": to_symbolic(boards), "mask": mask.astype(np.float32)}

  def _mix_unique(self, rng, boards, mask):
    """Replace a unique_fraction of (boards, mask) in place by the unique puzzles."""
    rows = np.flatnonzero(rng.random(self.batch_size) < self.unique_fraction)
    pick = rng.integers(0, len(self.unique[0]), len(rows))
    test = _test_keys()
    for row, j in zip(rows, pick):
      b, g = augment(rng, self.unique[0][j][None], self.unique[1][j][None])
      while b[0].tobytes() in test:
        b, g = augment(rng, self.unique[0][j][None], self.unique[1][j][None])
      g = g[0].copy()
      if rng.random() < 0.5:  # more givens: any superset of a unique puzzle is unique
        free = np.flatnonzero(~g)
        g[rng.choice(free, int(rng.integers(0, len(free) + 1)), replace=False)] = True
      boards[row], mask[row] = b[0], ~g
