import jax
import jax.numpy as jnp
import numpy as np
import pytest
from matplotlib.colors import rgb_to_hsv

from ipr_jax.data import even_pixels, sudoku
from ipr_jax.evaluation import even_pixels as ep_eval
from ipr_jax.evaluation import sudoku as sudoku_eval


def plain_valid(board) -> bool:
  """Independent checker: every row, column and box is a permutation of 1..9."""
  want = set(range(1, 10))
  b = [[int(v) for v in row] for row in board]
  rows = all(set(r) == want for r in b)
  cols = all({b[r][c] for r in range(9)} == want for c in range(9))
  boxes = all(
    {b[r][c] for r in range(br, br + 3) for c in range(bc, bc + 3)} == want
    for br in (0, 3, 6)
    for bc in (0, 3, 6)
  )
  return rows and cols and boxes


def test_generated_boards_valid_deterministic_disjoint():
  test = sudoku.test_boards()
  assert all(plain_valid(b) for b in test[:300])
  stream = sudoku.TrainStream(seed=0, batch_size=32, pool_size=200)
  assert all(plain_valid(b) for b in stream.pool)
  batch = stream.batch(5)
  np.testing.assert_array_equal(batch["x"], sudoku.TrainStream(0, 32, 200).batch(5)["x"])
  digits = np.asarray(sudoku_eval.decode_symbolic(jnp.asarray(batch["x"])))
  assert all(plain_valid(b) for b in digits)
  test_keys = {b.tobytes() for b in test}
  assert not any(b.tobytes() in test_keys for b in stream.pool)
  assert not any(b.astype(np.int8).tobytes() in test_keys for b in digits)
  np.testing.assert_array_equal(
    sudoku.generate_solved(np.random.default_rng(3)),
    sudoku.generate_solved(np.random.default_rng(3)),
  )


@pytest.mark.parametrize("split,lo,hi", [("hard", 0, 26), ("medium", 27, 53), ("easy", 54, 80)])
def test_givens_per_split(split, lo, hi):
  _, givens = sudoku.test_set(split, 200)
  counts = givens.sum(axis=1)
  assert counts.min() >= lo and counts.max() <= hi
  np.testing.assert_array_equal(givens, sudoku.test_set(split, 200)[1])
  np.testing.assert_array_equal(givens[50:60], sudoku.test_set(split, 10, offset=50)[1])


def test_sudoku_metrics_on_truth_and_corruptions():
  boards = sudoku.test_boards()[:500]
  m = sudoku_eval.symbolic_metrics(jnp.asarray(sudoku.to_symbolic(boards)))
  assert float(m["valid"].mean()) == 1.0
  bad = boards[:50].copy()
  for b in bad:  # swap two cells of one column: rows 0 and 1 each get a duplicate
    b[0, 0], b[1, 0] = b[1, 0], b[0, 0]
  dup = sudoku_eval.duplicate_count(jnp.asarray(bad))
  assert int(dup.min()) >= 2
  givens = np.zeros((50, 81), bool)
  givens[:, 0] = True
  assert not np.any(
    sudoku_eval.matches_givens(jnp.asarray(bad), jnp.asarray(boards[:50]), jnp.asarray(givens))
  )
  assert np.all(
    sudoku_eval.matches_givens(
      jnp.asarray(boards[:50]), jnp.asarray(boards[:50]), jnp.asarray(givens)
    )
  )
  # jit over [rounds, B]
  stacked = jnp.stack([jnp.asarray(boards[:50]), jnp.asarray(bad)])
  v = jax.jit(sudoku_eval.is_valid)(stacked)
  assert v.shape == (2, 50) and bool(v[0].all()) and not bool(v[1].any())


def test_bad_sudoku_inputs():
  with pytest.raises(ValueError, match="given-cell range"):
    sudoku.split_range((30, 10))
  with pytest.raises(ValueError, match="given-cell range"):
    sudoku.split_range((0, 90))
  with pytest.raises(ValueError, match="split"):
    sudoku.split_range("extreme")
  with pytest.raises(ValueError, match="9, 9, 9"):
    sudoku_eval.decode_symbolic(jnp.zeros((2, 9, 9, 3)))


def test_even_pixels_truth_and_flip():
  imgs = np.stack([even_pixels.item(i) for i in range(64)])
  x = jnp.asarray(even_pixels.to_model(imgs))
  m = jax.jit(ep_eval.metrics)(x)
  np.testing.assert_array_equal(m["color_imbalance_count"], 0)
  assert float(m["is_color_count_even"].mean()) == 1.0
  assert float(m["saturation_std"].max()) < 1e-6 and float(m["value_std"].max()) < 1e-6
  # flip one pixel to the other colour: imbalance 1
  flipped = np.asarray(x).copy()
  for i in range(64):
    a = flipped[i, 0, 0].copy()
    other = np.argwhere(np.any(np.abs(flipped[i] - a) > 1e-3, axis=-1))[0]
    if np.allclose(flipped[i, 0, 1], a):
      flipped[i, 0, 1] = flipped[i, other[0], other[1]]
    else:
      flipped[i, 0, 1] = a
  np.testing.assert_array_equal(ep_eval.color_imbalance_count(jnp.asarray(flipped)), 1)


def test_even_pixels_hsv_matches_matplotlib():
  rgb = np.random.default_rng(0).random((500, 3)).astype(np.float32)
  rgb[:50, 1] = rgb[:50, 2]  # ties
  rgb[50:60] = 0.3  # grey
  np.testing.assert_allclose(ep_eval.rgb_to_hsv(jnp.asarray(rgb)), rgb_to_hsv(rgb), atol=1e-6)
  with pytest.raises(ValueError, match="H, W, 3"):
    ep_eval.metrics(jnp.zeros((2, 32, 32, 1)))
