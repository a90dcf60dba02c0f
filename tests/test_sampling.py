import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ipr_jax import host_loop, regions, sampling, schedules
from tests.tiny import make_exact, make_tiny

GRID = regions.make_grid(6, 6, 2)  # R = 9 regions of 2x2 pixels, C = 2
R, SHAPE = 9, (6, 6, 2)


def _params(seed=0):
  return {"a": jnp.float32(0.7), "sigma": jax.random.uniform(jax.random.key(seed), (R,)) + 0.1}


def _inputs(b=4, seed=1):
  k = jax.random.split(jax.random.key(seed), 3)
  z = jax.random.normal(k[0], (b, *SHAPE))
  vals = jax.random.normal(k[1], (b, *SHAPE))
  known = jax.random.uniform(k[2], (b, R)) < jnp.linspace(0.0, 0.6, b)[:, None]
  return z, known, vals


@pytest.mark.parametrize("ps,ov", [(3, 0.0), (4, 0.5)])
def test_scan_equals_python_loop(ps, ov):
  apply, params = make_tiny(GRID), _params()
  z, known, vals = _inputs()
  cfg = sampling.SamplerConfig(ps, ov, alpha=0.5)
  got = sampling.sample(apply, params, jax.random.key(3), z, known, vals, cfg)
  want, starts = host_loop.sample(apply, params, jax.random.key(3), z, known, vals, cfg)
  np.testing.assert_array_equal(got.order, starts)  # same regions chosen at the same steps
  # Values agree to float32 rounding, not bit for bit: XLA:CPU fuses the denoiser and the
  # reverse kernel into one kernel inside the scan (different rounding than separate jits).
  np.testing.assert_allclose(got.x, want, rtol=0, atol=2e-6)


def test_known_regions_untouched_in_every_step():
  z, known, vals = _inputs()
  seen = []
  tiny = make_tiny(GRID)

  def apply(params, z_t, t_region, key=None):
    jax.debug.callback(lambda zz: seen.append(np.asarray(zz)), z_t)
    return tiny(params, z_t, t_region)

  res = sampling.sample(apply, _params(), jax.random.key(0), z, known, vals)
  kp = np.asarray(regions.to_pixels(known, GRID))[..., 0]
  assert len(seen) == int(res.nfe) > 0
  for zz in seen + [np.asarray(res.x)]:
    np.testing.assert_array_equal(zz[kp], np.asarray(vals)[kp])


@pytest.mark.parametrize("ps,ov", [(3, 0.0), (10, 0.8)])
def test_exact_velocity_recovers_target(ps, ov):
  target = jax.random.normal(jax.random.key(7), (1, *SHAPE))
  z, known, _ = _inputs()
  vals = jnp.broadcast_to(target, z.shape)
  res = sampling.sample(
    make_exact(GRID, target),
    _params(),
    jax.random.key(0),
    z,
    known,
    vals,
    sampling.SamplerConfig(ps, ov, alpha=0.0),
  )
  np.testing.assert_allclose(res.x, vals, atol=1e-4)


def test_greedy_picks_ascending_sigma_and_other_orders():
  params = _params(5)
  z, _, vals = _inputs()
  known = jnp.zeros((4, R), bool)
  res = sampling.sample(
    make_tiny(GRID), params, jax.random.key(0), z, known, vals, sampling.SamplerConfig(2, 0.0)
  )
  order = np.argsort(np.asarray(res.order), axis=1)
  expect = np.argsort(np.asarray(params["sigma"]))
  for b in range(4):
    np.testing.assert_array_equal(order[b], expect)
  np.testing.assert_array_equal(np.sort(np.asarray(res.order[0])), np.arange(R) * 2)
  raster = sampling.sample(
    make_tiny(GRID),
    params,
    jax.random.key(0),
    z,
    known,
    vals,
    sampling.SamplerConfig(2, 0.0, order="raster"),
  )
  np.testing.assert_array_equal(raster.order[0], np.arange(R) * 2)
  par = sampling.sample(
    make_tiny(GRID),
    params,
    jax.random.key(0),
    z,
    known,
    vals,
    sampling.SamplerConfig(5, 0.0, order="parallel"),
  )
  np.testing.assert_array_equal(par.order, 0)
  assert int(par.nfe) == 5
  rnd = sampling.sample(
    make_tiny(GRID),
    params,
    jax.random.key(0),
    z,
    known,
    vals,
    sampling.SamplerConfig(2, 0.0, order="random"),
  )
  assert sorted(np.asarray(rnd.order[0]).tolist()) == list(range(0, 18, 2))
  assert not np.array_equal(rnd.order[0], rnd.order[1])
  topk = sampling.sample(
    make_tiny(GRID),
    params,
    jax.random.key(0),
    z,
    known,
    vals,
    sampling.SamplerConfig(2, 0.0, top_k=4),
  )
  assert sorted(np.asarray(topk.order[0]).tolist()) == [0] * 4 + [2] * 4 + [4]
  assert int(topk.nfe) == 6


def test_mixed_unknown_counts_and_nfe():
  z, _, vals = _inputs()
  known = jnp.zeros((4, R), bool).at[0, :].set(True).at[1, :5].set(True)
  res = sampling.sample(
    make_tiny(GRID), _params(), jax.random.key(0), z, known, vals, sampling.SamplerConfig(3, 0.0)
  )
  assert int(res.nfe) == 3 * R  # the batch maximum: samples 2 and 3 have every region unknown
  np.testing.assert_array_equal(res.x[0], vals[0])  # nothing to generate: identity
  assert np.all(np.asarray(res.order[1, :5]) == schedules.NEVER)


def test_bad_input():
  z, known, vals = _inputs()
  apply, params = make_tiny(GRID), _params()
  with pytest.raises(ValueError, match="regions do not tile"):
    sampling.sample(apply, params, jax.random.key(0), z, known[:, :5], vals)
  with pytest.raises(ValueError, match="known_mask"):
    sampling.sample(apply, params, jax.random.key(0), z, known[:2], vals)
  with pytest.raises(ValueError, match="known_values"):
    sampling.sample(apply, params, jax.random.key(0), z, known, vals[:, :4])
  with pytest.raises(ValueError, match="regions do not tile"):
    sampling.sample(apply, params, jax.random.key(0), z, jnp.zeros((4, 7), bool), vals)
  for kwargs, name in [
    (dict(steps_per_patch=0), "steps_per_patch"),
    (dict(overlap=1.0), "overlap"),
    (dict(order="best"), "order"),
    (dict(alpha=2.0), "alpha"),
    (dict(top_k=0), "top_k"),
    (dict(variance="x"), "variance"),
    (dict(temperature=0.0), "temperature"),
  ]:
    with pytest.raises(ValueError, match=name):
      sampling.SamplerConfig(**kwargs)
