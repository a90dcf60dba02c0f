"""Iterative Partial Refinement (method 4): all rounds in one jitted `lax.scan`.

Round b, per sample: pick m = max(1, floor(|E| ratio)) eligible regions without replacement
(selector), re-noise them (fresh noise, or the sample's initial noise), and regenerate them with
the sequential sampler conditioned on every other region at t = 0. No acceptance test: IPR is a
Markov chain on complete samples. `metric_fn` runs inside the scan, so a whole budget curve
costs one call. With `chains=K`, K independent chains (own keys, own region masks) run under
one `jax.vmap`; with `pick` set as well, the result is one sample per item again: after every
round, per item, the chain the model doubts least (`lowest_sigma`: its last passes' mean sigma;
`probe`: `ipr_jax.doubt.probe` of the complete sample), a verifier-free choice. With
`accept_below` as well, the chains are restarts tried in order: an item stops at the first chain
whose final doubt is below it, picks among the chains it ran, and counts only their NFE
(`item_nfe`); `ipr_jax.restarts.solve` runs that policy spending only the compute it counts.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Optional

import chex
import flax
import jax
import jax.numpy as jnp
import numpy as np

from ipr_jax import debug as debug_lib
from ipr_jax import doubt, regions, rng, sampling, selectors, sharding

NOISE_TYPES = ("random", "fixed")
MODES = ("standard", "correction")
PICKS = ("lowest_sigma", "probe")
PROBE_STREAM = 1_000_003  # folded into a round's key for the probe's noise


@dataclasses.dataclass(frozen=True)
class RefineConfig:
  """Static knobs of IPR (method 6.3 Sudoku defaults). `initial` is the round-0 SRM pass,
  `ipr` the pass of every refinement round."""

  rounds: int = 15
  resampling_ratio: float = 0.25
  selector: str = "uniform"
  selector_power: float = 1.0
  noise_type: str = "random"
  mode: str = "standard"
  chains: Optional[int] = None
  final_ratio: Optional[float] = None  # ratio decays linearly to this by the last round
  # with chains: None returns every chain; "lowest_sigma" / "probe" one pick per item and round
  pick: Optional[str] = None
  probe_level: float = 0.4  # pick "probe": the noise level of the probe (ipr_jax.doubt)
  probe_draws: int = 4  # pick "probe": noise draws (network evaluations) per sample and round
  # with pick: chains run in order and an item stops at the first whose final doubt is below this
  accept_below: Optional[float] = None
  keep_history: bool = False
  initial: sampling.SamplerConfig = sampling.SamplerConfig(steps_per_patch=3, overlap=0.0)
  ipr: sampling.SamplerConfig = sampling.SamplerConfig(steps_per_patch=10, overlap=0.8)

  def __post_init__(self):
    if int(self.rounds) != self.rounds or self.rounds < 0:
      raise ValueError(f"rounds must be an integer >= 0, got {self.rounds}")
    if not 0.0 < self.resampling_ratio <= 1.0:
      raise ValueError(f"resampling_ratio must lie in (0, 1], got {self.resampling_ratio}")
    selectors.get(self.selector)  # ValueError naming the registered selectors
    for name, value, allowed in (
      ("noise_type", self.noise_type, NOISE_TYPES),
      ("mode", self.mode, MODES),
    ):
      if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    if self.chains is not None and (int(self.chains) != self.chains or self.chains < 1):
      raise ValueError(f"chains must be None or an integer >= 1, got {self.chains}")
    if self.final_ratio is not None and not 0.0 < self.final_ratio <= 1.0:
      raise ValueError(f"final_ratio must be None or lie in (0, 1], got {self.final_ratio}")
    if self.pick is not None:
      if self.pick not in PICKS:
        raise ValueError(f"pick must be None or one of {PICKS}, got {self.pick!r}")
      if self.chains is None or self.chains < 2:
        raise ValueError(f"pick {self.pick!r} chooses among chains: set chains >= 2")
    if self.accept_below is not None:
      if self.pick is None:
        raise ValueError("accept_below stops at the first chain a pick accepts: set pick")
      if not np.isfinite(self.accept_below):
        raise ValueError(f"accept_below must be a finite doubt score, got {self.accept_below}")
    doubt.check_probe(self.probe_level, self.probe_draws)


@flax.struct.dataclass
class RefineResult:
  x: jax.Array  # f32[(K,) B, H, W, C] sample after the last round
  metrics: object  # pytree of f32[(K,) rounds+1, B] (None without metric_fn)
  nfe: jax.Array  # i32[(K,) rounds+1] network evaluations of round 0..B
  history: object  # f32[(K,) rounds+1, B, H, W, C] with keep_history, else None
  selected: jax.Array  # bool[(K,) rounds, B, R] regions re-noised in each round
  sigma: jax.Array  # f32[(K,) B, R] the model's doubt about each region, last pass
  doubt: object = None  # with pick: f32[(K,) rounds+1, B] each sample's score after each round
  chosen: object = None  # with pick: i32[rounds+1, B] the chain picked after each round
  # i32[(K,) rounds+1, B] each item's own network evaluations per round (its plan's steps, plus
  # the probe's draws): what the item costs alone; with pick, summed over the chains it ran
  item_nfe: object = None
  ran: object = None  # with pick: bool[K, B] the chains each item ran (all without accept_below)


def num_resampled(num_eligible: int, ratio: float) -> int:
  """m = max(1, floor(|E| ratio)), with Python float arithmetic as the reference."""
  return max(1, int(num_eligible * ratio))


def round_ratios(cfg: RefineConfig) -> list:
  """The resampling ratio of rounds 1..rounds: constant (the paper), or with `final_ratio`
  linear from resampling_ratio at round 1 to final_ratio at the last round."""
  if cfg.final_ratio is None or cfg.rounds <= 1:
    return [cfg.resampling_ratio] * cfg.rounds
  step = (cfg.final_ratio - cfg.resampling_ratio) / (cfg.rounds - 1)
  return [cfg.resampling_ratio + i * step for i in range(cfg.rounds)]


def m_tables(cfg: RefineConfig, num_regions: int) -> np.ndarray:
  """i32[rounds, R + 1]: regions re-noised in each round for every eligible count |E|."""
  return np.array(
    [[num_resampled(n, ratio) for n in range(num_regions + 1)] for ratio in round_ratios(cfg)],
    np.int32,
  ).reshape(cfg.rounds, num_regions + 1)


def selector_scores(key, eligible, sigma, cfg: RefineConfig):
  """Higher score = re-noised first: the registered selector's scores (`ipr_jax.selectors`;
  uniform, or uncertainty = weights sigma ** selector_power), -inf where not eligible."""
  scores = selectors.get(cfg.selector)(key, sigma, cfg)
  chex.assert_shape(scores, eligible.shape)
  return jnp.where(eligible, scores.astype(jnp.float32), -jnp.inf)


def choose_regions(key, eligible, sigma, m_table, cfg: RefineConfig):
  """bool[R]: exactly m(|E|) eligible regions for one sample (eligible bool[R], sigma f32[R],
  m_table i32[R + 1])."""
  chex.assert_equal_shape([eligible, sigma])
  chex.assert_rank(eligible, 1)
  chex.assert_shape(m_table, (eligible.shape[0] + 1,))
  scores = selector_scores(key, eligible, sigma, cfg)
  m = m_table[jnp.sum(eligible)]
  rank = jnp.argsort(jnp.argsort(-scores, stable=True), stable=True)
  return eligible & (rank < m)


def _renoise(key, x, z_init, sel, grid, cfg: RefineConfig):
  """x, z_init f32[H, W, C]; sel bool[R]: fresh (or initial) noise in the selected regions."""
  chex.assert_equal_shape([x, z_init])
  chex.assert_shape(sel, (grid.num_regions,))
  noise = jax.random.normal(key, x.shape) if cfg.noise_type == "random" else z_init
  return jnp.where(regions.to_pixels(sel, grid), noise, x)


def apply_metric(metric_fn, metric_params, x):
  """`metric_fn(x)`, or `metric_fn(metric_params, x)` for an evaluator with weights (the
  calling convention of `refine`); None without a metric_fn."""
  if metric_fn is None:
    return None
  return metric_fn(x) if metric_params is None else metric_fn(metric_params, x)


def chain_keys(key, item_ids):
  """(initial noise, round-0 pass, rounds) keys key[B] each of a chain's items: split from
  fold_in(key, item_ids[b])."""
  return split_item_keys(sampling.item_keys(key, item_ids))


def split_item_keys(item_keys):
  """(initial noise, round-0 pass, rounds) keys key[B] each from the items' chain keys key[B]."""
  per_item = jax.vmap(lambda k: jax.random.split(k, 3))(item_keys)
  return per_item[:, 0], per_item[:, 1], per_item[:, 2]


def probe_keys(round_keys, i):
  """key[B]: the pick's probe noise after round i, from the items' round keys (chain_keys[2])
  folded with i and PROBE_STREAM: apart from every draw of the rounds themselves."""
  return jax.vmap(lambda k: jax.random.fold_in(jax.random.fold_in(k, i), PROBE_STREAM))(round_keys)


def probe_chains(apply_fn, params, key, item_ids, xs, eligible, cfg: RefineConfig, i: int):
  """f32[K, B]: the probe's doubt about each of K chains' samples xs f32[K, B, H, W, C] after
  round i, as returned unpicked by `refine(apply_fn, params, key, ..., item_ids=item_ids)` with
  cfg.chains = K and no pick: drawn with the keys refine's own probe pick uses there, so the
  lowest is the chain `pick="probe"` picks. Costs cfg.probe_draws evaluations per sample."""
  chex.assert_rank(xs, 5)
  chex.assert_shape(item_ids, (xs.shape[1],))
  doubt.check_probe(cfg.probe_level, cfg.probe_draws)

  def one(chain_key, x):
    keys = probe_keys(chain_keys(chain_key, item_ids)[2], i)
    return doubt.probe(apply_fn, params, keys, x, eligible, cfg.probe_level, cfg.probe_draws)

  return jax.vmap(one)(jax.random.split(key, xs.shape[0]), xs)


def refine_chain(
  apply_fn, metric_fn, cfg: RefineConfig, params, metric_params, item_keys, x, eligible
):
  """One chain: round 0 (SRM pass, or the given sample in correction mode) then the rounds.
  Every random draw of item b comes from its chain key item_keys[b] (refine's: fold_in(chain
  key, item_ids[b])): its initial noise, its round-0 pass, and per round its selection,
  re-noising and pass."""
  b, r = eligible.shape
  grid = sampling.grid_of(x.shape, r)
  chex.assert_shape(x, (b, grid.height, grid.width, None))
  chex.assert_shape(item_keys, (b,))
  tables = jnp.asarray(m_tables(cfg, r))
  k_init, k_pass, k_rounds = split_item_keys(item_keys)
  z_init = jax.vmap(lambda k: jax.random.normal(k, x.shape[1:]))(k_init)
  sigma = jnp.ones((b, r), jnp.float32)
  if cfg.mode == "standard":
    state, nfe0 = sampling.run_pass(
      apply_fn, params, k_pass, z_init, ~eligible, x, sigma, cfg.initial
    )
    x, sigma = state.z, jnp.where(eligible, state.sigma, sigma)
    item0 = state.total_steps
  else:
    nfe0, item0 = jnp.zeros((), jnp.int32), jnp.zeros((b,), jnp.int32)
  choose = jax.vmap(choose_regions, in_axes=(0, 0, 0, None, None))
  renoise = jax.vmap(_renoise, in_axes=(0, 0, 0, 0, None, None))

  def score(x, sigma, i):
    """f32[B] the pick's doubt about x after round i (None without a pick); its probe noise
    comes from fold_in(fold_in(k_rounds, i), PROBE_STREAM), apart from the rounds' draws."""
    if cfg.pick is None:
      return None
    if cfg.pick == "lowest_sigma":
      return doubt.eligible_mean(sigma, eligible)
    keys = probe_keys(k_rounds, i)
    return doubt.probe(apply_fn, params, keys, x, eligible, cfg.probe_level, cfg.probe_draws)

  probe_nfe = jnp.int32(cfg.probe_draws if cfg.pick == "probe" else 0)

  def round_fn(carry, inputs):
    x, sigma = carry
    i, m_table = inputs
    keys = jax.vmap(lambda k: jax.random.split(jax.random.fold_in(k, i), 3))(k_rounds).T
    sel = choose(keys[0], eligible, sigma, m_table, cfg)
    z = renoise(keys[1], x, z_init, sel, grid, cfg)
    state, nfe = sampling.run_pass(apply_fn, params, keys[2], z, ~sel, x, sigma, cfg.ipr)
    new_sigma = jnp.where(sel, state.sigma, sigma)
    chex.assert_trees_all_equal_shapes_and_dtypes((state.z, new_sigma), carry)  # invariant carry
    debug_lib.check_finite(state.z, "refined sample")
    hist = state.z if cfg.keep_history else None
    metric = apply_metric(metric_fn, metric_params, state.z)
    return (state.z, new_sigma), (
      metric,
      nfe + probe_nfe,
      state.total_steps + probe_nfe,
      hist,
      sel,
      score(state.z, new_sigma, i),
    )

  (x_final, sigma_final), (metrics, nfes, item_nfes, hist, selected, scores) = jax.lax.scan(
    round_fn, (x, sigma), (jnp.arange(1, cfg.rounds + 1), tables)
  )
  stack = lambda first, rest: jax.tree.map(lambda f, s: jnp.concatenate([f[None], s]), first, rest)
  metrics = None if metric_fn is None else stack(apply_metric(metric_fn, metric_params, x), metrics)
  history = stack(x, hist) if cfg.keep_history else None
  scores = None if cfg.pick is None else stack(score(x, sigma, 0), scores)
  nfe = stack(nfe0 + probe_nfe, nfes)
  item_nfe = stack(item0 + probe_nfe, item_nfes)
  return RefineResult(
    x_final, metrics, nfe, history, selected, sigma_final, scores, item_nfe=item_nfe
  )


def chains_run(final_doubt, accept_below: Optional[float] = None):
  """bool[K, B]: the chains each item runs when chains are restarts tried in order and an item
  stops at the first whose final doubt f32[K, B] is below `accept_below` (every chain when
  None, or when none is below: then the item ran all K)."""
  k = final_doubt.shape[0]
  if accept_below is None:
    return jnp.ones(final_doubt.shape, bool)
  ok = final_doubt < accept_below
  stop = jnp.where(jnp.any(ok, axis=0), jnp.argmax(ok, axis=0), k - 1)  # [B]
  return jnp.arange(k)[:, None] <= stop[None]


def pick_chains(res: RefineResult, ran=None) -> RefineResult:
  """One sample per item from K chains: after each round, the chain with the lowest doubt among
  those the item ran (`ran` bool[K, B], default all). res has a leading chain axis K and `doubt`
  f32[K, rounds+1, B]; the result has none: x, sigma of the chain picked after the last round,
  metrics / history / selected per round of the chain picked then, nfe the sum over the chains
  (every chain's pass ran in the batch), item_nfe the sum over each item's chains that ran,
  `chosen` i32[rounds+1, B]. With chains_run's stopping rule the last pick is the chain an item
  stopped at (the only one it ran below the threshold), else its least doubted."""
  chex.assert_rank(res.doubt, 3)
  ran = jnp.ones((res.doubt.shape[0], res.doubt.shape[2]), bool) if ran is None else ran
  chex.assert_shape(ran, (res.doubt.shape[0], res.doubt.shape[2]))
  chosen = jnp.argmin(jnp.where(ran[:, None], res.doubt, jnp.inf), axis=0)  # [rounds+1, B]
  last = chosen[-1]

  def per_round(a, c):  # a [K, rounds(+1), B, ...]; c [rounds(+1), B]
    idx = c.reshape(1, *c.shape, *([1] * (a.ndim - 3)))
    return jnp.take_along_axis(a, idx, axis=0)[0]

  def at_last(a):  # a [K, B, ...]
    return jnp.take_along_axis(a, last.reshape(1, -1, *([1] * (a.ndim - 2))), axis=0)[0]

  return RefineResult(
    x=at_last(res.x),
    metrics=jax.tree.map(lambda a: per_round(a, chosen), res.metrics),
    nfe=jnp.sum(res.nfe, axis=0),
    history=None if res.history is None else per_round(res.history, chosen),
    selected=per_round(res.selected, chosen[1:]),
    sigma=at_last(res.sigma),
    doubt=per_round(res.doubt, chosen),
    chosen=chosen,
    item_nfe=jnp.sum(jnp.where(ran[:, None], res.item_nfe, 0), axis=0),
    ran=ran,
  )


def _refine(
  apply_fn, metric_fn, cfg: RefineConfig, params, metric_params, key, item_ids, x, eligible
):
  chain = functools.partial(refine_chain, apply_fn, metric_fn, cfg, params, metric_params)
  if cfg.chains is None:
    return chain(sampling.item_keys(key, item_ids), x, eligible)
  keys = jax.random.split(key, cfg.chains)  # chain c's items: fold_in(keys[c], item index)
  res = jax.vmap(lambda k: chain(sampling.item_keys(k, item_ids), x, eligible))(keys)
  if cfg.pick is None:
    return res
  return pick_chains(res, chains_run(res.doubt[:, -1], cfg.accept_below))


_refine_jit = jax.jit(_refine, static_argnums=(0, 1, 2))


def _check_eligible(x, eligible) -> None:
  sampling.check_batch(x, eligible, "eligible")
  if not isinstance(eligible, jax.core.Tracer):
    empty = ~np.asarray(eligible, bool).any(axis=1)
    if empty.any():
      raise ValueError(
        f"eligible is empty for samples {np.flatnonzero(empty)[:10].tolist()}: "
        "every sample needs at least one region to refine"
      )


def check_inputs(x, eligible, config: RefineConfig) -> None:
  """refine's (and restarts.solve's) input checks: batch shapes, no empty eligible set, a float
  x, finite where it is read (all of it in correction mode, else the givens)."""
  _check_eligible(x, eligible)
  sampling.check_float(x, "x")
  if config.mode == "correction":
    sampling.check_finite(x, "x")
  else:
    sampling.check_finite(x, "x", where=~jnp.asarray(eligible, bool))  # the givens


def refine(
  apply_fn: Callable,
  params,
  key,
  x,
  eligible,
  config: RefineConfig = RefineConfig(),
  metric_fn: Optional[Callable] = None,
  *,
  metric_params=None,
  item_ids=None,
  debug: Optional[bool] = None,
  devices=None,
) -> RefineResult:
  """Run IPR on a batch. x f32[B, H, W, C]; eligible bool[B, R] (regions IPR may resample).

  Standard mode: regions not eligible are givens held at x; the eligible ones are generated
  first by the SRM pass (`config.initial`), then refined for `config.rounds` rounds. Correction
  mode: x is a complete sample, no initial pass. `metric_fn(f32[B, H, W, C]) -> f32[B]` (or a
  pytree of them) is evaluated for rounds 0..B inside the scan; with `metric_params` (e.g. an
  evaluator classifier's weights) it is called as `metric_fn(metric_params, x)`, and those
  params are an argument of the compiled program like `params`, not constants baked into it.
  jit-compiled once per shapes, config, apply_fn and metric_fn. `debug=True` (or
  IPR_JAX_DEBUG_NANS=1) runs a separately compiled version that stops at the first NaN/Inf in
  a denoiser output or a sample. Every draw of item b comes from fold_in(key, item_ids[b])
  (`item_ids` default 0..B-1; pass the global indices when a set is refined in batches), so an
  item's result does not depend on the batch it sits in. The batch (and with it every chain) is
  split over `devices` (default: all local devices; params replicated), padded to a multiple of
  their number (padding never changes a result); results do not depend on the device count.
  """
  check_inputs(x, eligible, config)
  b = np.shape(x)[0]
  ids = sampling.check_item_ids(item_ids, b)
  mesh = sharding.batch_mesh(b, devices)
  ids, batch = sharding.pad_batch(ids, (jnp.asarray(x), jnp.asarray(eligible, bool)), mesh)
  (params, metric_params, key), batch = sharding.place(
    mesh, (params, metric_params, rng.as_key(key)), (ids, *batch)
  )
  fn = (
    debug_lib.checked(_refine, apply_fn, metric_fn, config)
    if debug_lib.requested(debug)
    else functools.partial(_refine_jit, apply_fn, metric_fn, config)
  )
  res = fn(params, metric_params, key, *batch)
  chained = config.chains is not None and config.pick is None
  return res if batch[1].shape[0] == b else _first_items(res, b, chained)


def _first_items(res: RefineResult, b: int, chained: bool) -> RefineResult:
  """The result of the first b items of a padded batch (each field's batch axis: after the
  chain axis, and after the rounds axis for metrics, history and selected)."""
  c = 1 if chained else 0
  cut = lambda a, axis: jax.lax.slice_in_dim(a, 0, b, axis=axis)
  return res.replace(
    x=cut(res.x, c),
    metrics=jax.tree.map(lambda a: cut(a, c + 1), res.metrics),
    history=None if res.history is None else cut(res.history, c + 1),
    selected=cut(res.selected, c + 1),
    sigma=cut(res.sigma, c),
    doubt=None if res.doubt is None else cut(res.doubt, c + 1),
    chosen=None if res.chosen is None else cut(res.chosen, 1),
    item_nfe=cut(res.item_nfe, c + 1),
    ran=None if res.ran is None else cut(res.ran, 1),
  )
