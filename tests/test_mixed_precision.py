"""bf16 compute: params stay float32, outputs float32 and close to the float32 network's, training
and refinement run."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ipr_jax import denoisers, refine, regions, sampling, time_sampling, training
from ipr_jax.evaluation import counting_polygons as cp_eval
from ipr_jax.evaluation import digit_classifier

CONFIGS = {
  "transformer": denoisers.TransformerConfig(9, 9, 9, 1, dim=32, depth=2, heads=2),
  "unet": denoisers.UNetConfig(
    16, 16, 1, 4, widths=(16, 32), attention=(False, True), groups=8, head_channels=16, dropout=0.0
  ),
}
# bf16 keeps 8 bits of mantissa (relative step 2^-8 = 0.4%); a few layers of rounding stay
# within 5% of the output's scale
REL_TOL = 0.05


def _perturbed(params):
  """Weights away from the zero-initialised heads, so that every output depends on them."""
  rng = np.random.default_rng(7)  # NumPy: no compile per leaf shape
  return jax.tree.map(lambda p: p + 0.05 * rng.standard_normal(p.shape, np.float32), params)


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_bf16_outputs_close_to_f32(kind):
  cfg = CONFIGS[kind]
  apply32, params = denoisers.build(cfg, jax.random.key(0))
  apply16, params16 = denoisers.build(dataclasses.replace(cfg, dtype="bfloat16"), jax.random.key(0))
  assert {p.dtype for p in jax.tree.leaves(params16)} == {jnp.dtype(jnp.float32)}
  assert jax.tree.structure(params16) == jax.tree.structure(params)  # same checkpoints load
  params = _perturbed(params)
  r = (cfg.height // cfg.patch) * (cfg.width // cfg.patch)
  z = jax.random.normal(jax.random.key(1), (4, cfg.height, cfg.width, cfg.channels))
  t = jax.random.uniform(jax.random.key(2), (4, r))
  out32, out16 = jax.jit(apply32)(params, z, t), jax.jit(apply16)(params, z, t)
  for name in out32._fields:
    a, b = np.asarray(getattr(out32, name)), getattr(out16, name)
    assert b.dtype == jnp.float32, name
    err = np.abs(a - np.asarray(b)).max()
    assert 0 < err < REL_TOL * np.abs(a).max(), (name, err)  # bf16 ran (err > 0), and is close


def test_bf16_train_step_finite_and_refine_runs():
  cfg = dataclasses.replace(CONFIGS["transformer"], dtype="bfloat16")
  apply, params = denoisers.build(cfg, jax.random.key(0))
  grid = regions.make_grid(9, 9, 1)
  opt = training.make_optimizer(training.OptimConfig(learning_rate=1e-3, warmup_steps=1))
  step = training.make_train_step(apply, opt, grid, time_sampling.TimeSamplerConfig("independent"))
  state = training.init_state(params, opt)
  x = jnp.where(jax.random.uniform(jax.random.key(3), (8, 9, 9, 9)) < 0.5, 1.0, -1.0)
  for i in range(3):
    state, metrics = step(state, {"x": x}, jax.random.key(i))
    assert np.isfinite(float(metrics["loss"])) and np.isfinite(float(metrics["grad_norm"]))
  assert {p.dtype for p in jax.tree.leaves(state.params)} == {jnp.dtype(jnp.float32)}
  rcfg = refine.RefineConfig(
    rounds=2,
    initial=sampling.SamplerConfig(steps_per_patch=2),
    ipr=sampling.SamplerConfig(steps_per_patch=2),
  )
  res = refine.refine(
    apply, state.ema_params, jax.random.key(5), x[:2], jnp.ones((2, 81), bool), rcfg
  )
  assert res.x.dtype == jnp.float32 and np.isfinite(np.asarray(res.x)).all()


def test_bad_dtype_is_a_named_error():
  with pytest.raises(ValueError, match="dtype must be one of"):
    denoisers.build(dataclasses.replace(CONFIGS["transformer"], dtype="float16"), jax.random.key(0))


def test_classifiers_compute_in_bf16_with_float32_logits():
  apply32, params, _ = cp_eval.load()
  apply16, _, _ = cp_eval.load(dtype="bfloat16")
  x = jax.random.uniform(jax.random.key(0), (2, 128, 128, 3), minval=-1, maxval=1)
  a, b = apply32(params, x, None), apply16(params, x, None)
  for k in a:
    assert b[k].dtype == jnp.float32
    np.testing.assert_allclose(b[k], a[k], atol=REL_TOL * float(jnp.abs(a[k]).max()) + 1e-3)
  dapply32, dparams, _ = digit_classifier.load("sklearn")
  dapply16, _, _ = digit_classifier.load("sklearn", dtype="bfloat16")
  tiles = jax.random.uniform(jax.random.key(1), (5, 8, 8, 1), minval=-1, maxval=1)
  a, b = dapply32(dparams, tiles, None), dapply16(dparams, tiles, None)
  assert b.dtype == jnp.float32
  np.testing.assert_allclose(b, a, atol=REL_TOL * float(jnp.abs(a).max()))
