"""sample and refine split the batch over devices without changing results: 4 forced host
devices against 1, same keys, an uneven batch padded, a set refined in batches by item index
(run in a subprocess: the device count is fixed at JAX start-up)."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import pytest

from ipr_jax import sharding

SCRIPT = textwrap.dedent("""
  import os, json, sys
  os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
  sys.path.insert(0, {root!r})
  import jax, jax.numpy as jnp, numpy as np
  from ipr_jax import refine, regions, sampling
  from tests.tiny import make_tiny
  assert jax.device_count() == 4
  grid = regions.make_grid(4, 4, 2)
  apply = make_tiny(grid)
  params = {{"a": jnp.float32(0.7), "sigma": jnp.linspace(0.1, 2.0, 4)}}
  x = jax.random.normal(jax.random.key(1), (8, 4, 4, 2))
  eligible = (jax.random.uniform(jax.random.key(2), (8, 4)) < 0.7).at[:, 0].set(True)
  fast = sampling.SamplerConfig(steps_per_patch=2)
  out = {{}}
  for name, devices in (("one", jax.devices()[:1]), ("four", None)):
    s = sampling.sample(apply, params, jax.random.key(3), x, ~eligible, x, fast, devices=devices)
    cfg = refine.RefineConfig(rounds=3, initial=fast, ipr=fast, chains=2)
    r = refine.refine(apply, params, jax.random.key(4), x, eligible, cfg,
                      metric_fn=lambda y: {{"m": y.mean(axis=(-3, -2, -1))}}, devices=devices)
    out[name] = {{"sample": np.asarray(s.x).tolist(), "order": np.asarray(s.order).tolist(),
                  "refine": np.asarray(r.x).tolist(), "metric": np.asarray(r.metrics["m"]).tolist(),
                  "selected": np.asarray(r.selected).tolist(),
                  "devices": len(r.x.sharding.device_set)}}
  # 6 items over 4 devices: padded to 8, cut back; and a set refined in two batches by index
  s = sampling.sample(apply, params, jax.random.key(3), x[:6], ~eligible[:6], x[:6], fast)
  cfg = refine.RefineConfig(rounds=3, initial=fast, ipr=fast, chains=2, keep_history=True)
  r = refine.refine(apply, params, jax.random.key(4), x[:6], eligible[:6], cfg,
                    metric_fn=lambda y: {{"m": y.mean(axis=(-3, -2, -1))}})
  parts = [refine.refine(apply, params, jax.random.key(4), x[lo:hi], eligible[lo:hi], cfg,
                         item_ids=np.arange(lo, hi), devices=jax.devices()[:1])
           for lo, hi in ((0, 3), (3, 8))]
  out["uneven"] = {{"sample": np.asarray(s.x).tolist(), "refine": np.asarray(r.x).tolist(),
                    "metric": np.asarray(r.metrics["m"]).tolist(),
                    "history": list(r.history.shape), "selected": list(r.selected.shape),
                    "sigma": list(r.sigma.shape), "devices": len(r.x.sharding.device_set),
                    "parts": np.concatenate([np.asarray(p.x) for p in parts], 1).tolist()}}
  print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def runs():
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  res = subprocess.run(
    [sys.executable, "-c", SCRIPT.format(root=root)],
    capture_output=True,
    text=True,
    timeout=600,
    cwd=root,
  )
  assert res.returncode == 0, res.stderr[-3000:]
  return json.loads(res.stdout.strip().splitlines()[-1])


def test_sample_and_refine_same_on_one_and_four_devices(runs):
  one, four = runs["one"], runs["four"]
  assert one["devices"] == 1 and four["devices"] == 4  # the batch really was split
  for k in ("sample", "refine", "metric"):
    # per-sample maths is identical; XLA may fuse differently per shard: float tolerance
    assert jax.numpy.allclose(jax.numpy.asarray(one[k]), jax.numpy.asarray(four[k]), atol=1e-5), k
  assert one["order"] == four["order"] and one["selected"] == four["selected"]


def test_uneven_batch_is_padded_and_a_set_in_batches_equals_one_batch(runs):
  """6 items on 4 devices: padded, cut back, each item as in the batch of 8 (its key is its
  index); the 8 items refined as batches 0-2 and 3-7 with their indices: as one batch."""
  close = lambda a, b: jax.numpy.allclose(jax.numpy.asarray(a), jax.numpy.asarray(b), atol=1e-5)
  one, uneven = runs["one"], runs["uneven"]
  assert uneven["devices"] == 4
  assert close(uneven["sample"], one["sample"][:6])
  assert close(uneven["refine"], [chain[:6] for chain in one["refine"]])
  assert close(uneven["metric"], [[r[:6] for r in chain] for chain in one["metric"]])
  assert uneven["history"] == [2, 4, 6, 4, 4, 2] and uneven["selected"] == [2, 3, 6, 4]
  assert uneven["sigma"] == [2, 6, 4]
  assert close(uneven["parts"], one["refine"])


def test_devices_for_picks_the_largest_divisor():
  devs = ["d0", "d1", "d2", "d3"]
  assert sharding.devices_for(6, devs) == ["d0", "d1", "d2"]
  assert sharding.devices_for(10, devs) == ["d0", "d1"]
  assert sharding.devices_for(8, devs) == devs
  assert sharding.devices_for(7, devs) == ["d0"]
  assert sharding.batch_mesh(5, jax.devices()[:1]) is None
