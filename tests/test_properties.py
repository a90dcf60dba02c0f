"""Property-based checks of `refine` and `sample` over random shapes, masks, ratios and configs
(hypothesis): the invariants hold for every draw, or a named ValueError comes before compile.
Few examples each (every new shape compiles once); the seed of each failure is printed."""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipr_jax import refine as ipr
from ipr_jax import regions, sampling
from tests.tiny import make_tiny

SETTINGS = settings(
  max_examples=12,
  deadline=None,
  derandomize=True,
  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def problems(draw):
  """A small image batch with a region grid and a random eligibility mask (>= 1 per sample)."""
  patch = draw(st.sampled_from([1, 2]))
  gh, gw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
  b, c = draw(st.integers(1, 3)), draw(st.integers(1, 2))
  grid = regions.make_grid(gh * patch, gw * patch, patch)
  r = grid.num_regions
  mask = np.array(
    draw(st.lists(st.lists(st.booleans(), min_size=r, max_size=r), min_size=b, max_size=b)), bool
  ).reshape(b, r)
  mask[np.arange(b), draw(st.lists(st.integers(0, r - 1), min_size=b, max_size=b))] = True
  seed = draw(st.integers(0, 2**16))
  x = np.asarray(jax.random.normal(jax.random.key(seed), (b, grid.height, grid.width, c)))
  params = {"a": jnp.float32(0.7), "sigma": jnp.asarray(np.linspace(0.1, 2.0, r), jnp.float32)}
  return grid, x, mask, params, seed


def _region_values(a, grid):
  return np.asarray(regions.patchify(jnp.asarray(a), grid))


@SETTINGS
@given(
  problems(),
  st.floats(0.01, 1.0),
  st.integers(0, 3),
  st.sampled_from(["uniform", "uncertainty"]),
  st.sampled_from(["random", "fixed"]),
  st.integers(1, 4),
  st.sampled_from([0.0, 0.5, 0.8]),
)
def test_refine_invariants(problem, ratio, rounds, selector, noise, steps, overlap):
  grid, x, eligible, params, seed = problem
  cfg = ipr.RefineConfig(
    rounds=rounds,
    resampling_ratio=ratio,
    selector=selector,
    noise_type=noise,
    keep_history=True,
    initial=sampling.SamplerConfig(steps, overlap),
    ipr=sampling.SamplerConfig(steps, overlap),
  )
  res = ipr.refine(make_tiny(grid), params, jax.random.key(seed), x, eligible, cfg)
  hist = np.asarray(res.history)  # [rounds+1, B, H, W, C]
  assert hist.shape == (rounds + 1, *x.shape) and np.isfinite(hist).all()
  given_regions = ~eligible
  xr = _region_values(x, grid)
  for h in hist:  # givens bit-identical in every round
    np.testing.assert_array_equal(_region_values(h, grid)[given_regions], xr[given_regions])
  sel = np.asarray(res.selected)  # [rounds, B, R]
  want_m = [ipr.num_resampled(int(n), ratio) for n in eligible.sum(axis=1)]
  for i in range(rounds):
    assert not (sel[i] & ~eligible).any()
    np.testing.assert_array_equal(sel[i].sum(axis=1), want_m)
    before, after = _region_values(hist[i], grid), _region_values(hist[i + 1], grid)
    np.testing.assert_array_equal(after[~sel[i]], before[~sel[i]])  # unselected untouched
  np.testing.assert_array_equal(np.asarray(res.x), hist[-1])


@SETTINGS
@given(
  problems(),
  st.integers(1, 4),
  st.sampled_from([0.0, 0.5, 0.9]),
  st.sampled_from(["greedy", "random", "raster", "parallel"]),
  st.integers(1, 3),
)
def test_sample_invariants(problem, steps, overlap, order, top_k):
  grid, x, unknown, params, seed = problem
  cfg = sampling.SamplerConfig(steps, overlap, order, top_k=top_k)
  z = jax.random.normal(jax.random.key(seed + 1), x.shape)
  res = sampling.sample(make_tiny(grid), params, jax.random.key(seed), z, ~unknown, x, cfg)
  out = np.asarray(res.x)
  assert np.isfinite(out).all()
  np.testing.assert_array_equal(
    _region_values(out, grid)[~unknown], _region_values(x, grid)[~unknown]
  )
  # every unknown region was started exactly once; givens never
  started = np.asarray(res.order) < 2**30
  np.testing.assert_array_equal(started, unknown)
  n = [1 if order == "parallel" else -(-int(u) // top_k) for u in unknown.sum(axis=1)]
  want = max(sampling.schedules.sequential_plan(k, steps, overlap).total_steps for k in n)
  assert int(res.nfe) == want


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.floats(allow_nan=True, allow_infinity=True), st.floats(-3, 3), st.integers(-3, 40))
def test_bad_configs_are_named_errors(ratio, overlap, rounds):
  """Any ratio / overlap / rounds either builds a config or raises a ValueError naming it."""
  try:
    ipr.RefineConfig(rounds=rounds, resampling_ratio=ratio, ipr=sampling.SamplerConfig(3, overlap))
  except ValueError as e:
    assert any(n in str(e) for n in ("resampling_ratio", "overlap", "rounds")), e
  else:
    assert 0 < ratio <= 1 and 0 <= overlap < 1 and rounds >= 0
