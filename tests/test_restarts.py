"""Adaptive restarts: refine's accept_below policy, and restarts.solve that runs it lazily."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ipr_jax import refine as ipr
from ipr_jax import restarts
from tests.test_refine import APPLY, FAST, PARAMS, R, SHAPE

B, K = 6, 4
METRIC = lambda s: jnp.mean(s, axis=(1, 2, 3))


def _inputs(seed=0):
  x = jax.random.normal(jax.random.key(seed), (B, *SHAPE))
  eligible = jax.random.uniform(jax.random.key(seed + 100), (B, R)) < 0.7
  return x, eligible.at[:, 0].set(True)


def _every_chain(x, eligible, rounds, pick):
  """Every chain's result (doubt per chain and round from refine's own pick, one chain at a
  time: refine with pick on K chains returns the picked one only)."""
  cfg = ipr.RefineConfig(rounds=rounds, chains=K, keep_history=True, **FAST)
  every = ipr.refine(APPLY, PARAMS, jax.random.key(3), x, eligible, cfg, METRIC)
  w = np.asarray(eligible, np.float32)
  assert pick == "lowest_sigma"  # the final doubt is the last pass's mean eligible sigma
  final = (np.asarray(every.sigma) * w).sum(-1) / w.sum(-1)  # [K, B]
  return every, final


def test_accept_below_stops_at_the_first_accepted_chain_and_counts_only_the_chains_run():
  x, eligible = _inputs()
  every, final = _every_chain(x, eligible, rounds=0, pick="lowest_sigma")
  threshold = float(np.quantile(final, 0.3))
  cfg = ipr.RefineConfig(
    rounds=0, chains=K, pick="lowest_sigma", accept_below=threshold, keep_history=True, **FAST
  )
  got = ipr.refine(APPLY, PARAMS, jax.random.key(3), x, eligible, cfg, METRIC)
  ok = final < threshold
  stop = np.where(ok.any(0), ok.argmax(0), K - 1)
  assert len(set(stop.tolist())) > 1  # items stop at different chains: the rule is exercised
  for b in range(B):
    ran = final[: stop[b] + 1, b]
    c = int(ran.argmin())
    assert c == stop[b] or not ok[:, b].any()  # accepted: the chain it stopped at
    assert got.chosen[-1, b] == c
    np.testing.assert_array_equal(got.x[b], every.x[c, b])
    assert got.item_nfe[0, b] == int(np.asarray(every.item_nfe)[: stop[b] + 1, 0, b].sum())
    np.testing.assert_array_equal(got.ran[:, b], np.arange(K) <= stop[b])
  # without the threshold every chain runs and counts
  whole = ipr.refine(
    APPLY, PARAMS, jax.random.key(3), x, eligible, dataclasses.replace(cfg, accept_below=None)
  )
  np.testing.assert_array_equal(whole.item_nfe, np.asarray(every.item_nfe).sum(0))
  assert np.asarray(whole.ran).all()


def test_item_nfe_is_each_items_own_plan():
  x, eligible = _inputs()
  res = ipr.refine(
    APPLY, PARAMS, jax.random.key(0), x, eligible, ipr.RefineConfig(rounds=1, **FAST)
  )
  n = np.asarray(eligible).sum(1)
  np.testing.assert_array_equal(res.item_nfe[0], 2 * n)  # 2 steps per region, no overlap
  assert int(res.nfe[0]) == 2 * n.max()  # the batch runs to its longest plan


@pytest.mark.parametrize("rounds, slots", [(0, 1), (0, 6), (2, 4)])
def test_solve_equals_refine_with_the_same_policy(rounds, slots):
  x, eligible = _inputs(seed=rounds)
  cfg = ipr.RefineConfig(rounds=rounds, chains=K, pick="probe", keep_history=True, **FAST)
  every = ipr.refine(APPLY, PARAMS, jax.random.key(5), x, eligible, cfg, METRIC)
  threshold = float(np.quantile(np.asarray(every.doubt[-1]), 0.5))
  cfg = dataclasses.replace(cfg, accept_below=threshold)
  want = ipr.refine(APPLY, PARAMS, jax.random.key(5), x, eligible, cfg, METRIC)
  got = restarts.solve(APPLY, PARAMS, jax.random.key(5), x, eligible, cfg, METRIC, slots=slots)
  assert 1 < np.asarray(want.ran).sum(0).max() and np.asarray(want.ran).sum(0).min() < K
  np.testing.assert_array_equal(got.ran, want.ran)
  np.testing.assert_array_equal(got.chosen, want.chosen)
  np.testing.assert_array_equal(got.item_nfe, want.item_nfe)
  np.testing.assert_allclose(got.x, want.x, atol=1e-5)
  np.testing.assert_allclose(got.history, want.history, atol=1e-5)
  np.testing.assert_allclose(got.metrics, want.metrics, atol=1e-5)
  np.testing.assert_allclose(got.doubt, want.doubt, atol=1e-5)
  np.testing.assert_allclose(got.sigma, want.sigma, atol=1e-5)
  np.testing.assert_array_equal(got.selected, want.selected)
  np.testing.assert_array_equal(got.nfe, np.asarray(want.item_nfe).max(-1))


def test_solve_runs_only_the_chains_it_counts_and_compiles_once():
  x, eligible = _inputs()
  cfg = ipr.RefineConfig(rounds=0, chains=K, pick="probe", accept_below=1e9, **FAST)
  calls = []

  def counted(params, z, t, key=None):  # one entry per traced network call site
    calls.append(z.shape[0])
    return APPLY(params, z, t)

  once = restarts.solve(counted, PARAMS, jax.random.key(1), x[:2], eligible[:2], cfg, slots=2)
  per_compile = len(calls)
  assert np.asarray(once.ran).sum(0).tolist() == [1, 1]  # every item accepted its first chain
  # another threshold, other data, many steps: the same compiled step
  never = dataclasses.replace(cfg, accept_below=-1e9)
  x2, e2 = _inputs(seed=7)
  out = restarts.solve(counted, PARAMS, jax.random.key(2), x2[:2], e2[:2], never, slots=2)
  assert len(calls) == per_compile
  assert np.asarray(out.ran).all()  # nothing accepted: every item ran all K chains
  per_chain = 2 * np.asarray(e2[:2]).sum(1) + cfg.probe_draws  # its plan and its probe
  np.testing.assert_array_equal(out.item_nfe[0], K * per_chain)
  np.testing.assert_array_equal(once.item_nfe[0], 2 * np.asarray(eligible[:2]).sum(1) + 4)


def test_solve_bad_settings_are_named():
  x, eligible = _inputs()
  with pytest.raises(ValueError, match="set pick"):
    ipr.RefineConfig(chains=2, accept_below=0.5)
  with pytest.raises(ValueError, match="finite"):
    ipr.RefineConfig(chains=2, pick="probe", accept_below=float("nan"))
  with pytest.raises(ValueError, match="accept_below"):
    restarts.solve(APPLY, PARAMS, jax.random.key(0), x, eligible, ipr.RefineConfig(**FAST))
  cfg = ipr.RefineConfig(rounds=0, chains=2, pick="probe", accept_below=0.5, **FAST)
  with pytest.raises(ValueError, match="slots"):
    restarts.solve(APPLY, PARAMS, jax.random.key(0), x, eligible, cfg, slots=0)
  with pytest.raises(ValueError, match="eligible is empty"):
    restarts.solve(APPLY, PARAMS, jax.random.key(0), x, eligible.at[1].set(False), cfg)


def test_probing_every_chain_reproduces_refines_probe_pick():
  """probe_chains scores the unpicked chains with refine's own probe keys: its lowest is the
  chain pick="probe" picks, with the same doubt, after round 0 and after the last round."""
  x, eligible = _inputs(1)
  ids = jnp.arange(B) + 10  # item ids other than the positions: the keys follow the ids
  cfg = ipr.RefineConfig(rounds=2, chains=K, keep_history=True, **FAST)
  every = ipr.refine(APPLY, PARAMS, jax.random.key(5), x, eligible, cfg, item_ids=ids)
  picked = ipr.refine(
    APPLY,
    PARAMS,
    jax.random.key(5),
    x,
    eligible,
    dataclasses.replace(cfg, pick="probe"),
    item_ids=ids,
  )
  for i in (0, 2):
    d = ipr.probe_chains(
      APPLY, PARAMS, jax.random.key(5), ids, every.history[:, i], eligible, cfg, i
    )
    assert d.shape == (K, B)
    np.testing.assert_array_equal(np.argmin(d, 0), picked.chosen[i])
    np.testing.assert_allclose(np.min(d, 0), picked.doubt[i], rtol=1e-6)
  with pytest.raises(ValueError, match="probe level"):
    ipr.probe_chains(
      APPLY,
      PARAMS,
      jax.random.key(5),
      ids,
      every.x,
      eligible,
      dataclasses.replace(cfg, probe_level=1.5),
      0,
    )


@pytest.mark.parametrize("threshold, cap", [(None, 6), (0.2, 6), (0.5, 3)])
def test_the_studys_simulated_policy_is_refines(threshold, cap):
  """experiments.studies.adaptive_restarts simulates stopping rules on a restart table; on a
  random table it must choose and count as refine's chains_run + pick_chains do."""
  from experiments.studies import adaptive_restarts as study

  rng = np.random.default_rng(0)
  n = 50
  probe = rng.uniform(size=(6, n)).astype(np.float32)
  exact = rng.uniform(size=(6, n)) < 0.3
  nfe = rng.integers(100, 200, size=(6, n)).astype(np.int32)
  got = study.simulate(probe, exact, nfe, threshold, cap)
  p = jnp.asarray(probe[:cap])
  one = lambda a: jnp.asarray(a[:cap])[:, None]  # a chain axis, one round
  res = ipr.RefineResult(
    x=jnp.zeros((cap, n, 1)),
    metrics=one(exact.astype(np.float32)),
    nfe=jnp.zeros((cap, 1), jnp.int32),
    history=None,
    selected=jnp.zeros((cap, 0, n, 1), bool),
    sigma=jnp.zeros((cap, n, 1)),
    doubt=one(probe),
    item_nfe=one(nfe),
  )
  out = ipr.pick_chains(res, ipr.chains_run(p, threshold))
  assert got["exact"] == round(float(np.mean(out.metrics[0])), 4)
  assert got["mean_nfe"] == round(float(np.mean(out.item_nfe[0])), 1)
  assert got["max_nfe"] == int(np.max(out.item_nfe[0]))
  if threshold is not None:  # it did stop early somewhere, so the rule is exercised
    assert got["mean_restarts"] < cap


def test_the_study_summarizes_a_table_without_a_right_restart():
  """A weak model (image Sudoku's hard boards) can leave every restart wrong: no threshold is
  set from the right restarts' probe, only fixed K is simulated, and the AUC is undefined."""
  from experiments.studies import adaptive_restarts as study

  rng = np.random.default_rng(1)
  rows = {
    "probe": rng.uniform(size=(3, 5)).astype(np.float32),
    "exact": np.zeros((3, 5), bool),
    "item_nfe": np.full((3, 5), 100, np.int32),
  }
  s = study.summarize(rows, budget=250)
  assert s["adaptive"] == [] and s["best_adaptive"] is None
  assert [p["cap"] for p in s["fixed"]] == [1, 2, 3]
  assert [p["mean_nfe"] for p in s["fixed"]] == [100, 200, 300]
  assert s["best_fixed"]["cap"] in (1, 2) and s["best_fixed"]["exact"] == 0.0  # within 250 NFE
  assert np.isnan(s["probe_auc"])


def test_shipped_models_open_only_with_their_benchmark():
  from experiments import shipped

  with pytest.raises(ValueError, match="benchmarks with a shipped model"):
    shipped.open_model("even_pixels")
  with pytest.raises(ValueError, match="is a sudoku_symbolic model, not mnist_sudoku"):
    shipped.open_model("mnist_sudoku", "sudoku_symbolic")
  # a model's task is its own variant's: real-MNIST boards (28-pixel cells) for the real-MNIST
  # model, 8x8 digits for the default; opening needs no MNIST file (making puzzles would)
  for model, variant, source in (
    ("mnist_sudoku_latent_mnist_15k", "latent_mnist_more", "idx_dir"),
    (None, "latent_cpu_more", "sklearn"),
  ):
    _, _, manifest, run = shipped.open_model("mnist_sudoku", model)
    assert run.variant == variant == manifest["variant"]
    assert run.record["data"]["source"] == source


def test_the_study_asks_for_a_policy_before_loading_anything():
  from experiments.studies import adaptive_restarts as study

  with pytest.raises(SystemExit, match="--chains and --accept_below"):
    study.main(["--mode", "solve", "--chains", "4"])


def test_the_slot_count_halves_as_the_items_in_flight_thin_out():
  sizes = [restarts.step_size(n, 200) for n in (200, 101, 100, 51, 50, 3, 1)]
  assert sizes == [200, 200, 100, 100, 50, 4, 1]
  assert all(restarts.step_size(n, 7) >= n for n in range(1, 8))
  assert len({restarts.step_size(n, 200) for n in range(1, 201)}) <= 9  # log2(200) + 1 compiles
