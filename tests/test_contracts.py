"""chex contracts inside the library: a wrong-shaped call of an inner function fails when traced
with chex's message naming the shapes; the NaN debug switch; one compile per shapes and config."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ipr_jax import flow, losses, refine, regions, sampling, schedules, time_sampling, training
from ipr_jax.denoisers import DenoiserOutput, common
from ipr_jax.evaluation import sudoku as sudoku_eval
from tests.tiny import make_tiny

GRID = regions.make_grid(4, 4, 2)  # R = 4 regions of 2 x 2 pixels
B, R = 3, GRID.num_regions
APPLY = make_tiny(GRID)
PARAMS = {"a": jnp.float32(0.7), "sigma": jnp.linspace(0.1, 2.0, R)}
CHEX = r"\[Chex\]"


def _traced(fn, *args):
  """Run fn under jit, so that the failure is a trace-time one."""
  return jax.jit(fn)(*args)


def test_flow_rejects_mismatched_velocity():
  z = jnp.zeros((B, 4, 4, 2))
  t = jnp.full((B, 4, 4, 1), 0.5)
  with pytest.raises(AssertionError, match=CHEX + r".*\(3, 4, 4, 2\).*\(3, 4, 2, 4\)"):
    _traced(
      lambda z, v: flow.reverse_step(jax.random.key(0), z, t, t * 0.5, v, v, alpha=0.5),
      z,
      jnp.zeros((B, 4, 2, 4)),
    )
  with pytest.raises(AssertionError, match=CHEX):  # t must broadcast onto the image
    _traced(flow.interpolate, z, z, jnp.zeros((B, 4, 4, 3)))
  with pytest.raises(AssertionError, match=CHEX + ".*int32"):
    flow.interpolate(jnp.zeros((2,), jnp.int32), jnp.zeros((2,), jnp.int32), 0.5)


def test_regions_reject_sizes_that_do_not_fit_the_grid():
  with pytest.raises(AssertionError, match=CHEX + r".*\(3, 5\)"):
    _traced(lambda v: regions.to_pixels(v, GRID), jnp.zeros((B, 5)))
  with pytest.raises(AssertionError, match=CHEX + r".*\(3, 4, 6, 2\)"):
    _traced(lambda x: regions.patchify(x, GRID), jnp.zeros((B, 4, 6, 2)))
  with pytest.raises(AssertionError, match=CHEX):  # known: one flag per region, bool
    regions.impose_known(jnp.zeros((B, 4, 4, 2)), jnp.zeros((B, R)), jnp.zeros((B, 4, 4, 2)), GRID)


def test_schedule_level_needs_one_start_per_region():
  with pytest.raises(AssertionError, match=CHEX + r".*\(4,\).*\(5,\)"):
    schedules.noise_level(
      jnp.int32(0), jnp.zeros(4, jnp.int32), jnp.zeros(5, bool), jnp.int32(3), jnp.int32(9)
    )


def test_run_pass_rejects_transposed_mask_and_bad_denoiser_output():
  cfg = sampling.SamplerConfig(steps_per_patch=2)
  keys = jax.random.split(jax.random.key(0), B)
  z = jnp.zeros((B, 4, 4, 2))

  def call(apply, known, sigma):
    return sampling.run_pass(apply, PARAMS, keys, z, known, z, sigma, cfg)[0].z

  with pytest.raises(AssertionError, match=CHEX + r".*\(3, 4\)"):
    _traced(lambda s: call(APPLY, jnp.zeros((B, R), bool), s), jnp.zeros((R, B)))

  def transposed_sigma(params, z_t, t, key=None):
    out = APPLY(params, z_t, t)
    return out._replace(sigma_region=out.sigma_region.T[:, :B])

  with pytest.raises(AssertionError, match=CHEX):
    _traced(lambda s: call(transposed_sigma, jnp.zeros((B, R), bool), s), jnp.zeros((B, R)))


def test_refine_choose_regions_contract():
  cfg = refine.RefineConfig()
  with pytest.raises(AssertionError, match=CHEX + r".*\(4,\).*\(5,\)"):
    refine.choose_regions(
      jax.random.key(0), jnp.ones(4, bool), jnp.ones(5), jnp.ones(5, jnp.int32), cfg
    )


def test_loss_rejects_transposed_noise_and_region_maps():
  x = jnp.zeros((B, 4, 4, 2))
  out = DenoiserOutput(x, x, jnp.ones((B, R)))
  t = jnp.full((B, R), 0.5)
  with pytest.raises(AssertionError, match=CHEX + r".*\(3, 4, 2, 4\)"):
    _traced(lambda e: losses.srm_loss(out, x, e, t, t, GRID, step=1)[0], jnp.zeros((B, 4, 2, 4)))
  with pytest.raises(AssertionError, match=CHEX + r".*\(4, 3\)"):
    _traced(lambda tt: losses.srm_loss(out, x, x, tt, tt, GRID, step=1)[0], jnp.zeros((R, B)))


def test_time_sampler_and_density_table_shapes():
  with pytest.raises(AssertionError, match=CHEX + r".*\(999,\)"):
    time_sampling.density_weights(jnp.zeros((2, 3)), jnp.ones(999))


def test_denoiser_output_contract():
  z, t = jnp.zeros((B, 4, 4, 2)), jnp.zeros((B, R))
  common.check_output(DenoiserOutput(z, z, t), z, t)  # the right shapes pass
  with pytest.raises(AssertionError, match=CHEX + r".*\(4, 3\).*\(3, 4\)"):
    common.check_output(DenoiserOutput(z, z, t.T), z, t)
  with pytest.raises(AssertionError, match=CHEX + ".*bfloat16"):
    common.check_output(DenoiserOutput(z.astype(jnp.bfloat16), z, t), z, t)


def test_sudoku_metric_needs_integer_boards():
  with pytest.raises(AssertionError, match=CHEX + ".*float32"):
    sudoku_eval.duplicate_count(jnp.ones((2, 9, 9), jnp.float32))
  with pytest.raises(AssertionError, match=CHEX + r".*\(2, 9, 8\)"):
    sudoku_eval.duplicate_count(jnp.ones((2, 9, 8), jnp.int32))


# ---- the NaN debug switch -------------------------------------------------------------------


def _nan_apply(params, z_t, t_region, key=None):
  """The tiny model, but it produces NaN velocity once their noise level drops below nan_below."""
  out = APPLY(params, z_t, t_region)
  bad = regions.to_pixels(t_region, GRID) < params["nan_below"]
  return out._replace(velocity=jnp.where(bad, jnp.nan, out.velocity))


def _refine_inputs():
  x = jax.random.normal(jax.random.key(1), (B, 4, 4, 2))
  return x, jnp.ones((B, R), bool)


def test_debug_refine_stops_at_the_first_nan_and_names_it():
  x, eligible = _refine_inputs()
  params = dict(PARAMS, nan_below=jnp.float32(0.6))
  cfg = refine.RefineConfig(
    rounds=1,
    initial=sampling.SamplerConfig(steps_per_patch=2),
    ipr=sampling.SamplerConfig(steps_per_patch=2),
  )
  silent = refine.refine(_nan_apply, params, jax.random.key(0), x, eligible, cfg)
  assert np.isnan(np.asarray(silent.x)).any()  # without the switch NaN flows through silently
  with pytest.raises(AssertionError, match="denoiser output.*velocity.*NaN or Inf"):
    refine.refine(_nan_apply, params, jax.random.key(0), x, eligible, cfg, debug=True)
  # a finite model passes the checked path with the same result as the normal one: the same
  # regions and keys, values equal up to float rounding (two separately compiled programs; XLA
  # may fuse them differently, e.g. under the tests' cheap compile mode)
  fine = dict(PARAMS, nan_below=jnp.float32(-1.0))
  a = refine.refine(_nan_apply, fine, jax.random.key(0), x, eligible, cfg)
  b = refine.refine(_nan_apply, fine, jax.random.key(0), x, eligible, cfg, debug=True)
  np.testing.assert_array_equal(np.asarray(a.selected), np.asarray(b.selected))
  np.testing.assert_allclose(np.asarray(a.x), np.asarray(b.x), rtol=1e-5, atol=1e-6)


def test_debug_environment_switch_for_sample(monkeypatch):
  x, eligible = _refine_inputs()
  params = dict(PARAMS, nan_below=jnp.float32(0.6))
  z = jax.random.normal(jax.random.key(2), x.shape)
  known = jnp.zeros((B, R), bool)
  cfg = sampling.SamplerConfig(steps_per_patch=2)
  monkeypatch.setenv("IPR_JAX_DEBUG_NANS", "1")
  with pytest.raises(AssertionError, match="NaN or Inf"):
    sampling.sample(_nan_apply, params, jax.random.key(0), z, known, x, cfg)
  monkeypatch.setenv("IPR_JAX_DEBUG_NANS", "0")
  res = sampling.sample(_nan_apply, params, jax.random.key(0), z, known, x, cfg)
  assert np.isnan(np.asarray(res.x)).any()


def _train_parts(params):
  optimizer = optax.sgd(1e-2)
  state = training.init_state(params, optimizer)
  batch = {"x": jax.random.normal(jax.random.key(3), (B, 4, 4, 2))}
  return optimizer, state, batch


def test_debug_train_step_names_the_bad_gradient():
  def apply(params, z_t, t_region, key=None):
    out = APPLY(params, z_t, t_region)
    return out._replace(velocity=out.velocity * jnp.sqrt(params["scale"]))

  params = dict(PARAMS, scale=jnp.float32(-1.0))  # sqrt(-1): NaN from the first step
  optimizer, state, batch = _train_parts(params)
  step = training.make_train_step(
    apply, optimizer, GRID, time_sampling.TimeSamplerConfig("independent"), debug=True
  )
  with pytest.raises(AssertionError, match="loss.*NaN or Inf"):
    step(state, batch, jax.random.key(0))


# ---- one compile per shapes and config ------------------------------------------------------


def test_sample_and_train_step_trace_once_for_new_data():
  chex.clear_trace_counter()
  counted = chex.assert_max_traces(APPLY, n=1)  # the pass has one scan body
  cfg = sampling.SamplerConfig(steps_per_patch=2)
  for seed in range(3):
    z = jax.random.normal(jax.random.key(seed), (B, 4, 4, 2))
    known = jax.random.uniform(jax.random.key(10 + seed), (B, R)) < 0.5
    params = {"a": jnp.float32(0.1 * seed), "sigma": jnp.linspace(0.1, 2.0, R) * (seed + 1)}
    sampling.sample(counted, params, jax.random.key(seed), z, known, z, cfg)

  chex.clear_trace_counter()
  counted = chex.assert_max_traces(APPLY, n=1)
  optimizer, state, _ = _train_parts(PARAMS)
  step = training.make_train_step(
    counted, optimizer, GRID, time_sampling.TimeSamplerConfig("independent")
  )
  for i in range(3):
    batch = {"x": jax.random.normal(jax.random.key(20 + i), (B, 4, 4, 2))}
    state, _ = step(state, batch, jax.random.key(i))
  assert int(state.step) == 3
