import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ipr_jax import refine as ipr
from ipr_jax import host_loop, regions, sampling
from tests.tiny import make_tiny

GRID = regions.make_grid(6, 6, 2)
R, SHAPE = 9, (6, 6, 2)
APPLY = make_tiny(GRID)
PARAMS = {"a": jnp.float32(0.7), "sigma": jnp.linspace(0.1, 2.0, R)}
FAST = dict(initial=sampling.SamplerConfig(2, 0.0), ipr=sampling.SamplerConfig(3, 0.5))


def _inputs(b=3, seed=0):
  x = jax.random.normal(jax.random.key(seed), (b, *SHAPE))
  eligible = jnp.ones((b, R), bool).at[0, :4].set(False).at[1, :1].set(False)
  return x, eligible


def _region_changed(a, b):
  return np.asarray(jnp.any(regions.patchify(a, GRID) != regions.patchify(b, GRID), axis=-1))


def test_round_invariants():
  x, eligible = _inputs()
  cfg = ipr.RefineConfig(rounds=4, keep_history=True, **FAST)
  res = ipr.refine(APPLY, PARAMS, jax.random.key(1), x, eligible, cfg)
  hist = res.history
  assert hist.shape == (5, 3, *SHAPE)
  # givens (not eligible) never change, from the initial pass on
  for b in range(5):
    changed = _region_changed(hist[b], x)
    assert not np.any(changed & ~np.asarray(eligible))
  for b in range(1, 5):
    sel = np.asarray(res.selected[b - 1])
    changed = _region_changed(hist[b], hist[b - 1])
    assert not np.any(changed & ~sel)  # unselected regions bitwise unchanged
    assert np.all(changed[sel])  # re-noised regions were regenerated
    m = [ipr.num_resampled(int(n), 0.25) for n in np.asarray(eligible).sum(1)]
    np.testing.assert_array_equal(sel.sum(-1), m)  # exactly m per round
    assert not np.any(sel & ~np.asarray(eligible))
  np.testing.assert_array_equal(res.x, hist[-1])


def test_same_key_same_output_different_keys_differ():
  x, eligible = _inputs()
  cfg = ipr.RefineConfig(rounds=3, **FAST)
  a = ipr.refine(APPLY, PARAMS, jax.random.key(1), x, eligible, cfg)
  b = ipr.refine(APPLY, PARAMS, jax.random.key(1), x, eligible, cfg)
  c = ipr.refine(APPLY, PARAMS, jax.random.key(2), x, eligible, cfg)
  np.testing.assert_array_equal(a.x, b.x)
  np.testing.assert_array_equal(a.selected, b.selected)
  assert not np.array_equal(a.selected, c.selected)


def test_metrics_shape_and_values_and_nfe():
  x, eligible = _inputs()
  metric = lambda s: jnp.mean(s**2, axis=(1, 2, 3))
  cfg = ipr.RefineConfig(rounds=3, keep_history=True, **FAST)
  res = ipr.refine(APPLY, PARAMS, jax.random.key(1), x, eligible, cfg, metric_fn=metric)
  assert res.metrics.shape == (4, 3)
  np.testing.assert_allclose(res.metrics, jax.vmap(metric)(res.history), rtol=1e-6)
  # round 0: 2 steps per region, 9 unknown at most; rounds: m = 2 regions, 3 + 1*2 ... steps
  assert int(res.nfe[0]) == 2 * 9
  m = ipr.num_resampled(9, 0.25)
  from ipr_jax.schedules import sequential_plan

  assert all(int(n) == sequential_plan(m, 3, 0.5).total_steps for n in res.nfe[1:])
  chained = ipr.refine(
    APPLY,
    PARAMS,
    jax.random.key(1),
    x,
    eligible,
    ipr.RefineConfig(rounds=3, chains=2, **FAST),
    metric_fn=metric,
  )
  assert chained.metrics.shape == (2, 4, 3) and chained.nfe.shape == (2, 4)


def test_chains_equal_separate_calls():
  x, eligible = _inputs()
  k = 3
  res = ipr.refine(
    APPLY, PARAMS, jax.random.key(4), x, eligible, ipr.RefineConfig(rounds=2, chains=k, **FAST)
  )
  keys = jax.random.split(jax.random.key(4), k)
  for i in range(k):
    one = ipr.refine(APPLY, PARAMS, keys[i], x, eligible, ipr.RefineConfig(rounds=2, **FAST))
    np.testing.assert_array_equal(res.selected[i], one.selected)
    np.testing.assert_allclose(res.x[i], one.x, atol=1e-5)
  assert not np.array_equal(res.selected[0], res.selected[1])


def test_compiles_once_for_new_data():
  chex.clear_trace_counter()
  counted = chex.assert_max_traces(APPLY, n=2)  # one trace per scan body (initial + round)
  cfg = ipr.RefineConfig(rounds=2, **FAST)
  for seed in range(3):
    x, _ = _inputs(seed=seed)
    eligible = jax.random.uniform(jax.random.key(seed), (3, R)) < 0.7
    eligible = eligible.at[:, 0].set(True)
    params = {"a": jnp.float32(0.1 * seed), "sigma": jnp.linspace(0.1, 2.0, R) * (seed + 1)}
    ipr.refine(counted, params, jax.random.key(seed), x, eligible, cfg)


def test_correction_mode_and_fixed_noise():
  x, _ = _inputs()
  eligible = jnp.ones((3, R), bool)
  cfg = ipr.RefineConfig(rounds=2, mode="correction", noise_type="fixed", keep_history=True, **FAST)
  res = ipr.refine(APPLY, PARAMS, jax.random.key(0), x, eligible, cfg)
  assert int(res.nfe[0]) == 0
  np.testing.assert_array_equal(res.history[0], x)
  np.testing.assert_array_equal(res.selected.sum(-1), 2)


def test_uncertainty_selector_prefers_uncertain_regions():
  x = jnp.zeros((64, *SHAPE))
  eligible = jnp.ones((64, R), bool)
  params = {"a": jnp.float32(0.7), "sigma": jnp.array([0.05] * 6 + [5.0] * 3)}
  counts = {}
  for sel in ("uniform", "uncertainty"):
    res = ipr.refine(
      APPLY,
      params,
      jax.random.key(0),
      x,
      eligible,
      ipr.RefineConfig(rounds=3, selector=sel, selector_power=2.0, **FAST),
    )
    counts[sel] = np.asarray(res.selected).sum(axis=(0, 1))
  share = lambda c: c[6:].sum() / c.sum()
  assert share(counts["uncertainty"]) > 0.8 and share(counts["uniform"]) < 0.5


def test_bad_input():
  x, eligible = _inputs()
  run = lambda cfg=ipr.RefineConfig(rounds=1, **FAST), e=eligible, xx=x: ipr.refine(
    APPLY, PARAMS, jax.random.key(0), xx, e, cfg
  )
  for kwargs, name in [
    (dict(resampling_ratio=0.0), "resampling_ratio"),
    (dict(resampling_ratio=1.5), "resampling_ratio"),
    (dict(rounds=-1), "rounds"),
    (dict(selector="best"), "selector"),
    (dict(noise_type="pink"), "noise_type"),
    (dict(mode="x"), "mode"),
    (dict(chains=0), "chains"),
  ]:
    with pytest.raises(ValueError, match=name):
      ipr.RefineConfig(**kwargs)
  with pytest.raises(ValueError, match="overlap"):
    ipr.RefineConfig(ipr=sampling.SamplerConfig(3, 1.0))
  with pytest.raises(ValueError, match="steps_per_patch"):
    ipr.RefineConfig(ipr=sampling.SamplerConfig(0, 0.5))
  with pytest.raises(ValueError, match="order"):
    ipr.RefineConfig(ipr=sampling.SamplerConfig(3, 0.5, order="x"))
  with pytest.raises(ValueError, match="eligible"):
    run(e=eligible[:, :4])
  with pytest.raises(ValueError, match="eligible"):
    run(e=eligible[:2])
  with pytest.raises(ValueError, match=r"eligible is empty for samples \[1\]"):
    run(e=eligible.at[1].set(False))


def test_host_loop_refine_runs_the_same_plans():
  """The reference design of the speed benchmark (ipr_jax.host_loop) runs IPR's plans: same NFE
  per sample as the compiled refine, givens kept, every eligible region regenerated."""
  x, eligible = _inputs(b=2)
  cfg = ipr.RefineConfig(rounds=3, **FAST)
  for b in range(2):
    xb, eb = x[b : b + 1], eligible[b : b + 1]
    res = ipr.refine(APPLY, PARAMS, jax.random.key(0), xb, eb, cfg)
    out, nfe = host_loop.refine_one(jax.jit(APPLY), PARAMS, 0, xb, eb, cfg)
    assert nfe == int(np.sum(res.nfe))
    changed = _region_changed(out, xb)[0]
    np.testing.assert_array_equal(changed, np.asarray(eb[0]))


def test_decaying_ratio_renoises_the_scheduled_count_each_round():
  """final_ratio: m per round follows the linear schedule (endpoints exact), and the default is
  the paper's constant ratio; a bad final_ratio is a named error."""
  grid = regions.make_grid(4, 4, 1)
  apply = make_tiny(grid)
  params = {"a": jnp.float32(0.7), "sigma": jnp.linspace(0.2, 1.0, 16)}
  cfg = ipr.RefineConfig(
    rounds=4,
    resampling_ratio=0.5,
    final_ratio=0.125,
    initial=sampling.SamplerConfig(2),
    ipr=sampling.SamplerConfig(2),
  )
  assert ipr.round_ratios(cfg) == [0.5, 0.375, 0.25, 0.125]
  assert ipr.m_tables(cfg, 16)[:, 16].tolist() == [8, 6, 4, 2]
  assert ipr.round_ratios(ipr.RefineConfig(rounds=3)) == [0.25] * 3
  res = ipr.refine(
    apply, params, jax.random.key(0), jnp.zeros((2, 4, 4, 1)), jnp.ones((2, 16), bool), cfg
  )
  assert np.asarray(res.selected).sum(axis=-1).tolist() == [[8, 8], [6, 6], [4, 4], [2, 2]]
  assert res.sigma.shape == (2, 16)
  with pytest.raises(ValueError, match="final_ratio"):
    ipr.RefineConfig(final_ratio=1.5)


def test_chain_choices_lowest_sigma_and_region_vote():
  from ipr_jax import chains

  grid = regions.make_grid(2, 2, 1)
  xs = jnp.stack([jnp.full((2, 2, 2, 1), float(k)) for k in range(3)])  # chain k = all k
  sigma = jnp.array(
    [
      [[0.5, 0.5, 0.5, 0.5], [0.1, 0.1, 9.0, 9.0]],
      [[0.2, 0.2, 0.2, 0.2], [0.3, 0.3, 0.0, 0.0]],
      [[0.9, 0.9, 0.9, 0.9], [0.2, 0.2, 9.0, 9.0]],
    ]
  )
  eligible = jnp.array([[True] * 4, [True, True, False, False]])
  x, chosen = chains.lowest_sigma(xs, sigma, eligible)
  assert chosen.tolist() == [1, 0]  # sample 1: only the eligible regions count
  np.testing.assert_array_equal(x[0], xs[1, 0])
  np.testing.assert_array_equal(x[1], xs[0, 1])
  # one-hot "digits": per region the majority of 3 chains wins, whatever the chain order
  one_hot = lambda d: jax.nn.one_hot(jnp.asarray(d), 3)[None, ..., None, :].reshape(1, 2, 2, 3)
  votes = jnp.stack([one_hot([0, 1, 2, 2]), one_hot([0, 2, 2, 1]), one_hot([1, 1, 2, 0])])
  got = chains.region_vote(votes, grid)
  np.testing.assert_array_equal(
    jnp.argmax(got, -1).reshape(-1), jnp.array([0, 1, 2, 2])
  )  # a 3-way tie: the first chain


def test_an_items_result_depends_on_its_index_not_its_batch():
  """Per-item keys: item 4 of a set refined alone (item_ids=[4]), among other items in a batch
  of 3, or in the whole set gives the same board, selections and sample; the same item under
  another index does not (the index is its key)."""
  x, eligible = _inputs(b=6, seed=5)
  cfg = ipr.RefineConfig(rounds=3, selector="uncertainty", **FAST)
  whole = ipr.refine(APPLY, PARAMS, jax.random.key(7), x, eligible, cfg)
  alone = ipr.refine(APPLY, PARAMS, jax.random.key(7), x[4:5], eligible[4:5], cfg, item_ids=[4])
  trio = ipr.refine(
    APPLY, PARAMS, jax.random.key(7), x[2:5], eligible[2:5], cfg, item_ids=np.arange(2, 5)
  )
  for other, row in ((alone, 0), (trio, 2)):  # bit-identical on CPU
    np.testing.assert_array_equal(other.x[row], whole.x[4])
    np.testing.assert_array_equal(other.selected[:, row], whole.selected[:, 4])
  moved = ipr.refine(APPLY, PARAMS, jax.random.key(7), x[4:5], eligible[4:5], cfg, item_ids=[0])
  assert not np.allclose(moved.x[0], whole.x[4])
  s_whole = sampling.sample(APPLY, PARAMS, jax.random.key(3), x, ~eligible, x, FAST["initial"])
  s_alone = sampling.sample(
    APPLY, PARAMS, jax.random.key(3), x[4:5], ~eligible[4:5], x[4:5], FAST["initial"], item_ids=[4]
  )
  np.testing.assert_array_equal(s_alone.x[0], s_whole.x[4])
  noise = sampling.initial_noise(jax.random.key(3), np.arange(6), SHAPE)
  np.testing.assert_array_equal(noise[4:5], sampling.initial_noise(jax.random.key(3), [4], SHAPE))


@pytest.mark.parametrize(
  "ids, match",
  [
    ([0, 1], r"item_ids must be 3 integers"),
    ([0.0, 1.0, 2.0], r"item_ids must be 3 integers"),
    ([0, 1, 1], "distinct integers >= 0"),
    ([-1, 0, 1], "distinct integers >= 0"),
  ],
)
def test_bad_item_ids_are_named(ids, match):
  x, eligible = _inputs()
  with pytest.raises(ValueError, match=match):
    ipr.refine(
      APPLY,
      PARAMS,
      jax.random.key(1),
      x,
      eligible,
      ipr.RefineConfig(rounds=1, **FAST),
      item_ids=ids,
    )
  with pytest.raises(ValueError, match=match):
    sampling.sample(APPLY, PARAMS, jax.random.key(1), x, ~eligible, x, item_ids=ids)


@pytest.mark.parametrize("pick", ["lowest_sigma", "probe"])
def test_picked_chains_equal_the_chains_picked_by_hand(pick):
  """pick = per round and item, the chain of least doubt among the unpicked chains (same key:
  the probe draws nothing from the chains' streams); NFE = every chain's, probes included."""
  from ipr_jax import doubt

  x, eligible = _inputs()
  k, rounds = 3, 2
  base = ipr.RefineConfig(rounds=rounds, chains=k, keep_history=True, **FAST)
  metric = lambda s: jnp.mean(s, axis=(1, 2, 3))
  every = ipr.refine(APPLY, PARAMS, jax.random.key(4), x, eligible, base, metric)
  cfg = ipr.RefineConfig(rounds=rounds, chains=k, keep_history=True, pick=pick, **FAST)
  got = ipr.refine(APPLY, PARAMS, jax.random.key(4), x, eligible, cfg, metric)
  w = np.asarray(eligible, np.float32)
  if pick == "lowest_sigma":  # the sigma after round r: only the last round's is returned
    final = (np.asarray(every.sigma) * w).sum(-1) / w.sum(-1)  # [K, B]
    np.testing.assert_array_equal(got.chosen[-1], final.argmin(0))
  else:  # recompute each chain's probe from its history with the keys refine derives
    keys = jax.random.split(jax.random.key(4), k)
    scores = np.zeros((k, rounds + 1, 3))
    for c in range(k):
      k_rounds = ipr.chain_keys(keys[c], np.arange(3))[2]
      for r in range(rounds + 1):
        pk = ipr.probe_keys(k_rounds, r)
        scores[c, r] = doubt.probe(APPLY, PARAMS, pk, every.history[c, r], eligible)
    np.testing.assert_allclose(got.doubt, scores.min(0), rtol=1e-5)
    np.testing.assert_array_equal(got.chosen, scores.argmin(0))
  chosen = np.asarray(got.chosen)
  for r in range(rounds + 1):
    for b in range(3):
      c = chosen[r, b]
      np.testing.assert_array_equal(got.history[r, b], every.history[c, r, b])
      assert got.metrics[r, b] == every.metrics[c, r, b]
  np.testing.assert_array_equal(got.x, got.history[-1])
  per_chain = np.asarray(every.nfe[0]) + (cfg.probe_draws if pick == "probe" else 0)
  np.testing.assert_array_equal(got.nfe, k * per_chain)
  assert got.x.shape == x.shape and got.selected.shape == (rounds, 3, R)


def test_pick_and_probe_bad_settings():
  with pytest.raises(ValueError, match="set chains >= 2"):
    ipr.RefineConfig(pick="probe")
  with pytest.raises(ValueError, match="pick must be None or one of"):
    ipr.RefineConfig(chains=2, pick="vote")
  with pytest.raises(ValueError, match="probe level"):
    ipr.RefineConfig(chains=2, pick="probe", probe_level=1.0)
  with pytest.raises(ValueError, match="probe draws"):
    ipr.RefineConfig(chains=2, pick="probe", probe_draws=0)


def test_probe_is_per_item():
  from ipr_jax import doubt

  x, eligible = _inputs(b=3)
  keys = sampling.item_keys(jax.random.key(2), np.arange(3))
  together = doubt.probe(APPLY, PARAMS, keys, x, eligible, 0.3, 2)
  alone = doubt.probe(APPLY, PARAMS, keys[1:2], x[1:2], eligible[1:2], 0.3, 2)
  np.testing.assert_allclose(together[1], alone[0], rtol=1e-6)
  # only eligible regions count: the planted sigma of region 0..3 is left out for sample 0
  w = np.asarray(eligible[0], np.float32)
  expected = float((np.asarray(PARAMS["sigma"]) * w).sum() / w.sum())
  assert abs(float(together[0]) - expected) < 0.011  # planted sigma + a term below 0.01
