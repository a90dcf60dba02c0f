import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ipr_jax import denoisers, regions, time_sampling, training


def tiny_setup(lr=3e-3):
  cfg = denoisers.TransformerConfig(4, 4, 2, 1, dim=32, depth=2, heads=2)
  apply, params = denoisers.build(cfg, jax.random.key(0))
  opt = training.make_optimizer(training.OptimConfig(learning_rate=lr, warmup_steps=10))
  step = training.make_train_step(
    apply, opt, regions.make_grid(4, 4, 1), time_sampling.TimeSamplerConfig("independent")
  )
  return apply, params, opt, step


def tiny_batch(i, b=32):
  """Each image is +-(1, -1) in every region: the content of one region reveals all others."""
  s = np.random.default_rng(i).choice([-1.0, 1.0], size=(b, 1, 1, 1))
  return {"x": jnp.asarray(np.broadcast_to(s, (b, 4, 4, 2)) * np.array([1.0, -1.0]), jnp.float32)}


def test_loss_falls_on_tiny_task():
  _, params, opt, step = tiny_setup()
  state = training.init_state(params, opt)
  losses = []
  for i in range(300):
    state, m = step(state, tiny_batch(i), jax.random.fold_in(jax.random.key(1), i))
    losses.append(float(m["loss_mu"]))
  assert int(state.step) == 300
  first, last = np.mean(losses[:20]), np.mean(losses[-50:])
  assert last < 0.25 * first, (first, last)


def test_mask_reduction_weights_boards():
  """Givens get t = 0 and weight 0 either way; "all" (spec) lets a board weigh by its unknown
  fraction; "unknown" scales a board's unknown cells by R / (their count), so that every board's
  mean weight over all R regions (what the loss averages) is 1."""
  t = jnp.full((3, 4), 0.5)
  w = jnp.ones((3, 4))
  mask = jnp.asarray([[1, 1, 1, 1], [1, 0, 0, 0], [0, 1, 1, 0]], jnp.float32)
  for reduction in training.REDUCTIONS:
    tm, wm = training.apply_mask(t, w, mask, reduction)
    np.testing.assert_array_equal(tm, 0.5 * mask)
    np.testing.assert_array_equal(wm == 0, mask == 0)
  _, w_all = training.apply_mask(t, w, mask, "all")
  _, w_unknown = training.apply_mask(t, w, mask, "unknown")
  np.testing.assert_allclose(w_all.mean(axis=1), [1.0, 0.25, 0.5])
  np.testing.assert_allclose(w_unknown.sum(axis=1) / mask.sum(axis=1), [1.0, 4.0, 2.0])
  np.testing.assert_allclose(w_unknown.mean(axis=1), 1.0)
  with pytest.raises(ValueError, match="loss reduction must be one of"):
    training.LossConfig(reduction="pixels")


def test_ema_first_update_copies_then_decays():
  p = {"w": jnp.ones(3)}
  e = training.ema_update({"w": jnp.zeros(3)}, p, jnp.array(0), 0.9)
  np.testing.assert_array_equal(e["w"], 1.0)
  e = training.ema_update({"w": jnp.zeros(3)}, p, jnp.array(4), 0.9)
  np.testing.assert_allclose(e["w"], 0.1, rtol=1e-6)


def test_warmup_schedule():
  cfg = training.OptimConfig(
    learning_rate=1.0, warmup_steps=100, clip_norm=1e9, weight_decay=0.0, b1=0.0, b2=0.0, eps=0.0
  )
  opt = training.make_optimizer(cfg)
  params = {"w": jnp.zeros(())}
  state = opt.init(params)
  upd, state = opt.update({"w": jnp.ones(())}, state, params)
  np.testing.assert_allclose(-upd["w"], 2e-4, rtol=1e-3)  # adam step of size lr at step 0


def test_cosine_schedule_steps():
  """Sign-Adam (b1 = b2 = eps = 0) makes each update's size the learning rate of that step."""
  cfg = training.OptimConfig(
    learning_rate=1.0,
    warmup_steps=10,
    decay_steps=110,
    final_factor=0.1,
    clip_norm=1e9,
    weight_decay=0.0,
    b1=0.0,
    b2=0.0,
    eps=0.0,
  )
  opt = training.make_optimizer(cfg)
  params = {"w": jnp.zeros(())}
  state = opt.init(params)
  sizes = []
  for _ in range(130):
    upd, state = opt.update({"w": jnp.ones(())}, state, params)
    sizes.append(float(-upd["w"]))
  np.testing.assert_allclose(sizes[10], 1.0, rtol=1e-5)  # peak right after warm-up
  np.testing.assert_allclose(sizes[60], 0.55, rtol=1e-4)  # half-way down the cosine
  np.testing.assert_allclose(sizes[110:], 0.1, rtol=1e-5)  # floor at final_factor * lr
  with pytest.raises(ValueError, match="decay_steps"):
    training.make_optimizer(training.OptimConfig(warmup_steps=10, decay_steps=10))


SHARD_SCRIPT = textwrap.dedent("""
  import os, json
  os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
  import jax, numpy as np
  sys_path = {path!r}
  import sys; sys.path.insert(0, sys_path)
  from tests.test_training import tiny_setup, tiny_batch
  from ipr_jax import training
  assert jax.device_count() == 4
  out = {{}}
  for mode in ("one", "four"):
    apply, params, opt, _ = tiny_setup()
    mesh = training.data_mesh() if mode == "four" else training.data_mesh(jax.devices()[:1])
    from ipr_jax import regions, time_sampling
    step = training.make_train_step(apply, opt, regions.make_grid(4, 4, 1),
                                    time_sampling.TimeSamplerConfig("independent"), mesh=mesh)
    state = training.replicate(training.init_state(params, opt), mesh)
    losses = []
    for i in range(5):
      batch = training.shard_batch(tiny_batch(i), mesh)
      state, m = step(state, batch, jax.random.fold_in(jax.random.key(1), i))
      losses.append(float(m["loss"]))
    out[mode] = losses
    out[mode + "_shards"] = len(batch["x"].sharding.device_set)
  print(json.dumps(out))
""")


def test_sharded_training_matches_one_device():
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  res = subprocess.run(
    [sys.executable, "-c", SHARD_SCRIPT.format(path=root)],
    capture_output=True,
    text=True,
    timeout=600,
    cwd=root,
  )
  assert res.returncode == 0, res.stderr[-3000:]
  out = json.loads(res.stdout.strip().splitlines()[-1])
  assert out["four_shards"] == 4 and out["one_shards"] == 1
  np.testing.assert_allclose(out["four"], out["one"], rtol=2e-5, atol=1e-6)
