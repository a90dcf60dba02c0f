"""Sudoku puzzles with exactly one solution: an exact solver, a minimal-puzzle generator, levels.

The SRM splits (`sudoku.SPLITS`) keep a random number of givens, so most hard puzzles have many
valid completions. The puzzles here have one: uniqueness is proved by `count_solutions(p, 2) == 1`
(an exact search: constraint propagation by naked and hidden singles, then branching on the cell
with the fewest candidates; it counts solutions up to a limit and the branch points it visits).

Levels (`LEVELS`), item i from held-out board `sudoku.test_boards()[i]` and its own generator,
so items are independent of each other and of batch position:
- `minimal`: a minimal puzzle, no given can be removed without losing uniqueness. Cells are
  removed in a seeded random order, each removal kept when the puzzle stays unique; one pass
  leaves a minimal puzzle (removing more givens can only add solutions). 22-26 givens typically.
- `deep`: a minimal puzzle that naked and hidden singles alone cannot finish: a human solver needs
  a further technique (pairs, locked candidates, ...) or a guess. Removal orders of the same board
  are tried in turn (seeded by attempt) until one gives such a puzzle.

`solver_nodes` (branch points of the exact search) rates a puzzle's effort; both levels report it.
"""

from __future__ import annotations

import functools

import numpy as np

from ipr_jax.data import sudoku

LEVELS = ("minimal", "deep")
UNIQUE_SEED = 90_210
MAX_ATTEMPTS = 400

_ROW = np.arange(81) // 9
_COL = np.arange(81) % 9
_BOX = (_ROW // 3) * 3 + _COL // 3
_UNITS = tuple(
  tuple(int(c) for c in np.flatnonzero(ids == u)) for ids in (_ROW, _COL, _BOX) for u in range(9)
)
_PEERS = tuple(
  tuple(
    int(p)
    for p in np.flatnonzero((_ROW == _ROW[c]) | (_COL == _COL[c]) | (_BOX == _BOX[c]))
    if p != c
  )
  for c in range(81)
)
_ALL = 0x1FF
_POP = tuple(bin(m).count("1") for m in range(512))
_DIGIT = {1 << d: d + 1 for d in range(9)}  # single-bit mask -> digit 1..9


def _assign(cand: list, fixed: list, c: int, bit: int) -> bool:
  """Place `bit` in cell c and remove it from c's peers; False on a contradiction."""
  cand[c], fixed[c] = bit, True
  for p in _PEERS[c]:
    m = cand[p]
    if m & bit:
      if fixed[p]:
        return False
      cand[p] = m & ~bit
      if not cand[p]:
        return False
  return True


def _propagate(cand: list, fixed: list) -> bool:
  """Naked and hidden singles until nothing changes; False on a contradiction."""
  changed = True
  while changed:
    changed = False
    for c in range(81):
      m = cand[c]
      if not fixed[c] and _POP[m] == 1:
        if not _assign(cand, fixed, c, m):
          return False
        changed = True
    for unit in _UNITS:
      once = twice = placed = 0
      for c in unit:
        m = cand[c]
        twice |= once & m
        once |= m
        if fixed[c]:
          placed |= m
      if once != _ALL:
        return False  # a digit has no place left in this unit
      hidden = once & ~twice & ~placed
      while hidden:
        bit = hidden & -hidden
        hidden ^= bit
        cell = next((c for c in unit if cand[c] & bit), None)
        if cell is None:
          return False  # the cell that held this hidden single took another one
        if fixed[cell]:
          continue
        if not _assign(cand, fixed, cell, bit):
          return False
        changed = True
  return True


def _start(puzzle) -> tuple[list, list] | None:
  """Candidate masks and fixed flags of a puzzle (int[81] or int[9, 9], 0 = empty), the givens
  placed; None if the givens already clash."""
  flat = [int(v) for v in np.asarray(puzzle).reshape(81)]
  if any(v < 0 or v > 9 for v in flat):
    raise ValueError("puzzle cells must be 0 (empty) or digits 1..9")
  cand, fixed = [_ALL] * 81, [False] * 81
  for c, v in enumerate(flat):
    if v and not (cand[c] & (1 << (v - 1)) and _assign(cand, fixed, c, 1 << (v - 1))):
      return None
  return cand, fixed


def solve_stats(puzzle, limit: int = 2) -> tuple[int, int, np.ndarray | None]:
  """(solutions found up to `limit`, branch points visited, the first solution int8[9, 9] or
  None). Exact: the search stops only at `limit` solutions or when the tree is exhausted."""
  start = _start(puzzle)
  if start is None:
    return 0, 0, None
  found, nodes, first = 0, 0, None
  stack = [start]
  while stack:
    cand, fixed = stack.pop()
    if not _propagate(cand, fixed):
      continue
    open_cells = [c for c in range(81) if not fixed[c]]
    if not open_cells:
      found += 1
      if first is None:
        first = np.array([_DIGIT[m] for m in cand], np.int8).reshape(9, 9)
      if found >= limit:
        break
      continue
    nodes += 1
    c = min(open_cells, key=lambda i: _POP[cand[i]])
    m = cand[c]
    while m:
      bit = m & -m
      m ^= bit
      nc, nf = list(cand), list(fixed)
      if _assign(nc, nf, c, bit):
        stack.append((nc, nf))
  return found, nodes, first


def count_solutions(puzzle, limit: int = 2) -> int:
  """Number of solutions of `puzzle` (0 = empty cell), counted up to `limit`."""
  return solve_stats(puzzle, limit)[0]


def singles_solvable(puzzle) -> bool:
  """True if naked and hidden singles alone fill every cell (no further technique, no guess)."""
  start = _start(puzzle)
  return start is not None and _propagate(*start) and all(start[1])


def minimal_givens(board, rng: np.random.Generator) -> np.ndarray:
  """bool[81] givens of a minimal unique puzzle of the solved `board` (int[9, 9]): cells leave in
  the random order `rng` draws, each removal kept when the puzzle keeps one solution."""
  puzzle = np.asarray(board, np.int8).reshape(81).copy()
  if any(sorted(puzzle[list(u)]) != list(range(1, 10)) for u in _UNITS):
    raise ValueError("board must be a valid solved Sudoku (digits 1..9, no repeats in a unit)")
  for c in rng.permutation(81):
    digit = puzzle[c]
    puzzle[c] = 0
    if count_solutions(puzzle, 2) != 1:
      puzzle[c] = digit
  return puzzle != 0


def level_givens(board, level: str, seed_parts: tuple) -> np.ndarray:
  """bool[81] givens of `board` at `level`, from default_rng([UNIQUE_SEED, level, *seed_parts,
  attempt]); attempts go on (deep) until a removal order gives a puzzle of the level."""
  if level not in LEVELS:
    raise ValueError(f"unique-solution level must be one of {LEVELS}, got {level!r}")
  code = LEVELS.index(level)
  for attempt in range(MAX_ATTEMPTS):
    givens = minimal_givens(board, np.random.default_rng([UNIQUE_SEED, code, *seed_parts, attempt]))
    if level == "minimal" or not singles_solvable(np.where(givens, board.reshape(81), 0)):
      return givens
  raise RuntimeError(f"no {level} puzzle in {MAX_ATTEMPTS} removal orders of this board")


@functools.lru_cache(maxsize=4096)
def _test_item(index: int, level: str) -> bytes:
  return level_givens(sudoku.test_boards()[index], level, (index,)).tobytes()


def test_givens(index: int, level: str) -> np.ndarray:
  """bool[81] givens of held-out item `index` at `level` (its board: sudoku.test_boards()[i])."""
  if not 0 <= index < sudoku.NUM_TEST:
    raise ValueError(f"the test set has {sudoku.NUM_TEST} boards; asked for item {index}")
  return np.frombuffer(_test_item(int(index), level), dtype=bool).copy()


def train_givens(index: int, level: str = "minimal") -> np.ndarray:
  """bool[81] givens of a unique puzzle at `level` of training board `index` (sudoku.train_board;
  never a held-out board)."""
  return level_givens(sudoku.train_board(index), level, (1_000_000 + index,))


def validation_set(level: str, num: int) -> tuple[np.ndarray, np.ndarray]:
  """(boards int8[num, 9, 9], givens bool[num, 81]) for model selection: the validation boards
  of `sudoku.validation_set`, their own removal orders; never the test set."""
  boards, _ = sudoku.validation_set("hard", num)
  givens = np.stack([level_givens(b, level, (2_000_000 + i,)) for i, b in enumerate(boards)])
  return boards, givens


def rating(board, givens) -> dict:
  """{'givens', 'solver_nodes', 'singles'} of a puzzle: its size and the effort it takes."""
  puzzle = np.where(np.asarray(givens).reshape(81), np.asarray(board).reshape(81), 0)
  _, nodes, _ = solve_stats(puzzle, 2)
  return {
    "givens": int(np.sum(givens)),
    "solver_nodes": int(nodes),
    "singles": bool(singles_solvable(puzzle)),
  }
