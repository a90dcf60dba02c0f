"""Counting Polygons: generator invariants, labels, bad input, and the shipped evaluator."""

import os

import numpy as np
import pytest

from ipr_jax.data import counting_polygons as cp


def test_number_pairs_are_the_35_classes():
  assert len(cp.NUMBER_PAIRS) == 35
  assert cp.pair_label(3, 9) == cp.pair_label(9, 3)
  with pytest.raises(ValueError, match="pair"):
    cp.pair_label(1, 2)


@pytest.mark.parametrize("n", [3, 7, 11])
def test_layout_disjoint_and_inside(n):
  for seed in range(20):
    lay = cp.circle_layout(np.random.default_rng(seed), n)
    x, y, r = lay.T
    assert (
      lay.shape == (n, 3)
      and (r >= 0.5 * cp.RADIUS_RANGE[0]).all()
      and (r <= cp.RADIUS_RANGE[1]).all()
    )
    assert (x - r >= 0).all() and (x + r <= 1).all() and (y - r >= 0).all() and (y + r <= 1).all()
    d = np.hypot(x[:, None] - x[None], y[:, None] - y[None]) - r[:, None] - r[None]
    assert (d[~np.eye(n, dtype=bool)] >= cp.GAP - 1e-12).all()


def test_items_deterministic_and_labelled():
  a, la = cp.item(5, "test")
  b, lb = cp.item(5, "test")
  np.testing.assert_array_equal(a, b)
  assert la == lb and la["num_polygons"] == 6 and la["numbers_match"] and la["is_uniform"]
  assert a.shape == (128, 128, 3) and a.dtype == np.uint8
  assert not np.array_equal(a, cp.item(5, "train")[0])
  assert not np.array_equal(a, cp.item(5, "validation")[0])
  # the test split cycles through every polygon count
  assert [cp.item(i, "test")[1]["num_polygons"] for i in range(9)] == list(range(1, 10))


def test_render_draws_the_polygons_and_numbers():
  """Ink area grows with the polygon count; a blank background stays white outside the shapes."""
  lay = np.array([[0.2, 0.2, 0.1], [0.8, 0.2, 0.1], [0.2, 0.8, 0.1], [0.8, 0.8, 0.1]])
  one = cp.render(lay[1:], [4], (3, 4), [0.0], (0, 0, 0))  # same numbers in the same circles
  two = cp.render(lay, [4, 4], (3, 4), [0.0, 0.0], (0, 0, 0))
  ink = lambda im: int((im.mean(-1) < 128).sum())
  assert ink(two) > ink(one) > 0
  square = 2 * (0.1 * 128) ** 2  # the square inscribed in a circle of radius r has area 2 r^2
  assert abs(ink(two) - ink(one) - square) < 0.1 * square
  assert (two[64, 64] == 255).all()


def test_corrupt_items_have_negatives():
  labels = [cp.item(i, "train", corrupt=True)[1] for i in range(60)]
  assert any(not l["is_uniform"] for l in labels) and any(l["numbers_match"] for l in labels)
  assert any(l["is_uniform"] and not l["numbers_match"] for l in labels)
  for l in labels:
    assert l["numbers_match"] == (
      l["is_uniform"] and sorted(l["numbers"]) == sorted((l["num_polygons"], l["num_vertices"]))
    )


def test_bad_input():
  with pytest.raises(ValueError, match="num_polygons"):
    cp.generate(np.random.default_rng(0), 10)
  with pytest.raises(ValueError, match="num_circles"):
    cp.circle_layout(np.random.default_rng(0), 12)
  with pytest.raises(ValueError, match="split"):
    cp.item(0, "dev")
  with pytest.raises(ValueError, match="background"):
    cp.Backgrounds("/nonexistent/folder")
  with pytest.raises(ValueError, match="background"):
    cp.render(np.full((3, 3), 0.3), [3], (1, 3), [0.0], (0, 0, 0), background=np.zeros((64, 64, 3)))


def test_evaluator_rejects_wrong_size():
  import jax
  import jax.numpy as jnp
  from ipr_jax.evaluation import counting_polygons as ce

  apply, params = ce.build(ce.PolygonClassifierConfig(), jax.random.key(0))
  with pytest.raises(ValueError, match="128, 128, 3"):
    ce.metrics(apply, params, jnp.zeros((2, 64, 64, 3)))


@pytest.mark.skipif(
  not os.path.exists(
    os.path.join(os.path.dirname(cp.__file__), "..", "assets", "polygons_blank", "manifest.json")
  ),
  reason="classifier not shipped",
)
def test_shipped_classifier_on_ground_truth_and_corruptions():
  """>= 95% of ground-truth test images have numbers matching objects; planted corruptions (a
  wrong number pair; mixed vertex counts) are caught."""
  import jax
  import jax.numpy as jnp
  from ipr_jax.evaluation import counting_polygons as ce

  apply, params, man = ce.load()
  f = jax.jit(lambda x: ce.metrics(apply, params, x))
  clean = np.stack([cp.item(i, "test")[0] for i in range(180)])
  m = f(jnp.asarray(cp.to_model(clean)))
  assert float(m["numbers_match_objects"].mean()) >= 0.95
  assert float(m["are_vertices_uniform"].mean()) >= 0.95
  rng = np.random.default_rng(0)
  lay = cp.circle_layout(rng, 6)
  wrong = cp.render(lay, [5] * 4, (7, 5), rng.uniform(0, 6, 4), (150, 0, 0))  # 4 polygons, says 7
  right = cp.render(lay, [5] * 4, (4, 5), rng.uniform(0, 6, 4), (150, 0, 0))
  mixed = cp.render(lay, [3, 7, 3, 7], (4, 5), rng.uniform(0, 6, 4), (150, 0, 0))
  m = f(jnp.asarray(cp.to_model(np.stack([right, wrong, mixed]))))
  np.testing.assert_array_equal(np.asarray(m["numbers_match_objects"][:2]), [1.0, 0.0])
  assert float(m["are_vertices_uniform"][2]) == 0.0
  assert man["test"]["ground_truth"]["numbers_match_objects"] >= 0.95
  # the cleanliness head: inputs that are not clean items score ~0 on both headline metrics
  x = cp.to_model(clean[:60])
  for kind in ce.NEGATIVES:
    neg, _ = ce.negatives(np.random.default_rng(5), x, kinds=(kind,))
    m = f(jnp.asarray(neg))
    assert float(m["numbers_match_objects"].mean()) <= 0.05, kind
    assert float(m["are_vertices_uniform"].mean()) <= 0.05, kind
  assert float(f(jnp.asarray(x))["is_clean"].mean()) >= 0.97


def test_negatives_are_what_they_say():
  from ipr_jax.evaluation import counting_polygons as ce

  x = cp.to_model(np.stack([cp.item(i, "test")[0] for i in range(4)]))
  rng = np.random.default_rng(0)
  neg, kinds = ce.negatives(rng, x)
  assert neg.shape == x.shape and neg.dtype == np.float32 and set(kinds) <= set(ce.NEGATIVES)
  shuffled, _ = ce.negatives(rng, x, kinds=("shuffled",))
  np.testing.assert_allclose(
    np.sort(shuffled.reshape(4, -1), axis=1), np.sort(x.reshape(4, -1), axis=1)
  )
  assert not np.array_equal(shuffled, x)
  blank, _ = ce.negatives(rng, x, kinds=("blank",))
  assert np.all(np.ptp(blank, axis=(1, 2)) == 0)  # one colour per image
  t = ce.negative_targets(3)
  assert t["is_clean"].tolist() == [0, 0, 0] and all(
    (t[k] == -1).all() for k in ce.HEADS if k != "is_clean"
  )
  with pytest.raises(ValueError, match="negative kind"):
    ce.negatives(rng, x, kinds=("static",))
