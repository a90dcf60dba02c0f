"""The SRM sequential sampler (method 3): one jitted `lax.scan` over a static step count.

Per sample the state is O(R): the start step of every region (NEVER until selected), which
regions remain to be selected, the block counter, and the sample's own plan (n, M, Lc), so
samples with different numbers of unknown regions share one batch: a sample past its M takes
identity steps (t = s = 0), and steps beyond the batch maximum M skip the network (`lax.cond`).

Step r for one sample (method 3.2): t = closed-form level at r; run the denoiser; if blocks start
at r, select the next regions in the configured order (greedy = lowest sigma first); s = level at
r + 1 with the new starts; z <- reverse step (mean where s = 0); re-impose the givens.
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
from ipr_jax import flow, orders, regions, rng, schedules, sharding


@dataclasses.dataclass(frozen=True)
class SamplerConfig:
  """Static knobs of one sequential pass (hashable; a jit static argument)."""

  steps_per_patch: int = 3
  overlap: float = 0.0
  order: str = "greedy"
  top_k: int = 1
  alpha: float = 0.5
  temperature: float = 1.0
  variance: str = "learned_range"

  def __post_init__(self):
    schedules.check_steps_per_patch(self.steps_per_patch)
    schedules.overlap_fraction(self.overlap)
    orders.get(self.order)  # ValueError naming the registered orders
    if int(self.top_k) != self.top_k or self.top_k < 1:
      raise ValueError(f"top_k must be an integer >= 1, got {self.top_k}")
    flow.check_alpha(self.alpha)
    flow.check_variance(self.variance)
    if not self.temperature > 0:
      raise ValueError(f"temperature must be > 0, got {self.temperature}")


@flax.struct.dataclass
class PassState:
  z: jax.Array  # f32[H, W, C] current sample
  start: jax.Array  # i32[R] step at which each region was selected (NEVER = not yet)
  remaining: jax.Array  # bool[R] unknown and not selected yet
  known: jax.Array  # bool[R] held at its value throughout (t = 0)
  count: jax.Array  # i32[] blocks started so far
  sigma: jax.Array  # f32[R] model sigma of each region at its selection step
  num_blocks: jax.Array  # i32[] n
  total_steps: jax.Array  # i32[] M
  proto_len: jax.Array  # i32[] Lc
  den: jax.Array  # i32[] (n - 1) a + b


@flax.struct.dataclass
class SampleResult:
  x: jax.Array  # f32[B, H, W, C] final samples
  sigma_region: jax.Array  # f32[B, R] sigma at each region's selection step (input sigma if kept)
  nfe: jax.Array  # i32[] network evaluations run (the batch maximum of M)
  order: jax.Array  # i32[B, R] start step of each region in this pass (NEVER if not selected)


def grid_of(x_shape, num_regions: int) -> regions.RegionGrid:
  """Square-patch grid with R regions on an H x W image; ValueError if none fits."""
  h, w = x_shape[-3], x_shape[-2]
  p = int(round((h * w / num_regions) ** 0.5)) if num_regions > 0 else 0
  if p < 1 or (h // p) * (w // p) != num_regions or h % p or w % p:
    raise ValueError(f"R={num_regions} regions do not tile a {h}x{w} image in square patches")
  return regions.make_grid(h, w, p)


def num_blocks(num_unknown, cfg: SamplerConfig):
  """n = ceil(|U| / top_k); one block for a one-block order (parallel)."""
  if orders.get(cfg.order).one_block:
    return jnp.minimum(num_unknown, 1)
  return schedules.ceil_div(num_unknown, cfg.top_k)


def max_steps(num_regions: int, cfg: SamplerConfig) -> int:
  """Static scan length: M of the largest possible plan (every region unknown)."""
  n = 1 if orders.get(cfg.order).one_block else schedules.ceil_div(num_regions, cfg.top_k)
  a, b = schedules.overlap_fraction(cfg.overlap)
  return schedules.plan_ints(n, cfg.steps_per_patch, a, b)[0]


def init_pass(z, known, known_values, sigma, grid, cfg: SamplerConfig) -> PassState:
  """Per-sample start of a pass: givens imposed, every unknown region waiting at t = 1.
  z, known_values f32[H, W, C]; known bool[R]; sigma f32[R]."""
  chex.assert_shape([z, known_values], (grid.height, grid.width, None))
  chex.assert_shape([known, sigma], (grid.num_regions,))
  chex.assert_type([z, known, sigma], [float, bool, float])
  unknown = ~known
  n = num_blocks(jnp.sum(unknown).astype(jnp.int32), cfg)
  a, b = schedules.overlap_fraction(cfg.overlap)
  m, lc, den = schedules.plan_ints(n, cfg.steps_per_patch, a, b)
  z = regions.impose_known(z, known, known_values, grid)
  never = jnp.full(known.shape, schedules.NEVER, jnp.int32)
  return PassState(z, never, unknown, known, jnp.zeros((), jnp.int32), sigma, n, m, lc, den)


def order_scores(key, r, sigma_now, cfg: SamplerConfig):
  """Lower score = generated earlier (the registered order, `ipr_jax.orders`). f32[R]."""
  chex.assert_rank(sigma_now, 1)
  scores = orders.get(cfg.order).score(key, r, sigma_now)
  chex.assert_shape(scores, sigma_now.shape)
  return scores.astype(jnp.float32)


def _select(st: PassState, r, scores, cfg: SamplerConfig):
  """bool[R]: regions whose block starts at step r (k per block, lowest scores first)."""
  a, _ = schedules.overlap_fraction(cfg.overlap)
  started = schedules.blocks_started_by(r, st.num_blocks, st.total_steps, a, st.den)
  new_blocks = jnp.where(r < st.total_steps, started - st.count, 0)
  per_block = scores.shape[0] if orders.get(cfg.order).one_block else cfg.top_k
  masked = jnp.where(st.remaining, scores, jnp.inf)
  rank = jnp.argsort(jnp.argsort(masked, stable=True), stable=True)
  return st.remaining & (rank < new_blocks * per_block), new_blocks


def level(st: PassState, r):
  return schedules.noise_level(r, st.start, st.known, st.proto_len, st.total_steps)


def pass_step(
  st: PassState, r, t, out_velocity, out_v, out_sigma, known_values, key, grid, cfg: SamplerConfig
) -> PassState:
  """One step r of one sample, given t = level(st, r) f32[R] and the denoiser output at t
  (velocity, v f32[H, W, C], sigma f32[R])."""
  chex.assert_equal_shape([st.z, out_velocity, out_v, known_values])
  chex.assert_equal_shape([t, out_sigma, st.start])
  sel, new_blocks = _select(st, r, order_scores(key, r, out_sigma, cfg), cfg)
  st = st.replace(
    start=jnp.where(sel, r, st.start),
    remaining=st.remaining & ~sel,
    count=st.count + new_blocks,
    sigma=jnp.where(sel, out_sigma, st.sigma),
  )
  s = level(st, r + 1)
  z = flow.reverse_step(
    jax.random.fold_in(key, r),
    st.z,
    regions.to_pixels(t, grid),
    regions.to_pixels(s, grid),
    out_velocity,
    out_v,
    alpha=cfg.alpha,
    temperature=cfg.temperature,
    variance=cfg.variance,
  )
  return st.replace(z=regions.impose_known(z, st.known, known_values, grid))


def run_pass(apply_fn, params, keys, z, known, known_values, sigma, cfg: SamplerConfig):
  """The batched pass: keys key[B], z f32[B,H,W,C], known bool[B,R], sigma f32[B,R].

  Returns (PassState batched, nfe i32[]). The one place that vmaps over the batch.
  """
  grid = grid_of(z.shape, known.shape[-1])
  b = z.shape[0]
  chex.assert_shape([known, sigma], (b, grid.num_regions))
  chex.assert_shape(known_values, z.shape)
  chex.assert_shape(keys, (b, *keys.shape[1:]))
  state = jax.vmap(init_pass, in_axes=(0, 0, 0, 0, None, None))(
    z, known, known_values, sigma, grid, cfg
  )
  batch_steps = jnp.max(state.total_steps)
  step = jax.vmap(pass_step, in_axes=(0, None, 0, 0, 0, 0, 0, 0, None, None))

  def body(st, r):
    def run(st):
      t = jax.vmap(level, in_axes=(0, None))(st, r)
      out = apply_fn(params, st.z, t)
      debug_lib.check_finite(out, "denoiser output")
      chex.assert_shape(out.velocity, z.shape)
      chex.assert_shape(out.sigma_region, known.shape)
      return step(
        st, r, t, out.velocity, out.v_interp, out.sigma_region, known_values, keys, grid, cfg
      )

    new = jax.lax.cond(r < batch_steps, run, lambda st: st, st)
    chex.assert_trees_all_equal_shapes_and_dtypes(new, st)  # the loop state is invariant
    debug_lib.check_finite(new.z, "sampler state z")
    return new, None

  steps = jnp.arange(max_steps(known.shape[-1], cfg), dtype=jnp.int32)
  state, _ = jax.lax.scan(body, state, steps)
  return state, batch_steps


def check_batch(x, mask, name: str, num_regions: Optional[int] = None) -> None:
  """ValueError naming `name` unless mask is [B, R] for x of [B, H, W, C]."""
  if np.ndim(x) != 4:
    raise ValueError(f"images must be [B, H, W, C], got shape {np.shape(x)}")
  r = np.shape(mask)[-1] if num_regions is None else num_regions
  if np.ndim(mask) != 2 or np.shape(mask) != (np.shape(x)[0], r):
    raise ValueError(f"{name} must have shape [B, R] = [{np.shape(x)[0]}, R], got {np.shape(mask)}")
  grid_of(np.shape(x), np.shape(mask)[-1])


def check_float(x, name: str) -> None:
  """ValueError unless x has a floating dtype (an integer image would change the loop's types)."""
  dtype = np.result_type(x)
  if not jnp.issubdtype(dtype, jnp.floating):
    raise ValueError(f"{name} must be a float array f32[B, H, W, C], got dtype {dtype}")


def check_finite(x, name: str, where=None) -> None:
  """ValueError if a concrete x holds NaN or Inf (only in the regions where bool[B, R] `where`
  is True, if given): one bad given cell would turn every generated cell into NaN."""
  if isinstance(x, jax.core.Tracer) or (where is not None and isinstance(where, jax.core.Tracer)):
    return
  bad = ~np.isfinite(np.asarray(x))
  if where is not None:
    grid = grid_of(np.shape(x), np.shape(where)[-1])
    bad = np.asarray(regions.patchify(jnp.asarray(bad), grid).any(axis=-1)) & np.asarray(
      where, bool
    )
  rows = np.flatnonzero(bad.reshape(bad.shape[0], -1).any(axis=1))
  if rows.size:
    part = "" if where is None else " (in regions it must hold fixed)"
    raise ValueError(f"{name} holds NaN or Inf{part} in samples {rows[:10].tolist()}")


def item_keys(key, item_ids):
  """key[B]: one key per item, fold_in(key, its global index). A sample then depends on
  (key, item index, config) only: not on the batch it sits in, its size, or the devices."""
  return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, jnp.asarray(item_ids))


def initial_noise(key, item_ids, shape):
  """f32[B, *shape]: standard normal noise of each item from item_keys(key, item_ids), so a
  caller's z_init, too, is the same for an item in any batch."""
  return jax.vmap(lambda k: jax.random.normal(k, tuple(shape)))(item_keys(key, item_ids))


def check_item_ids(item_ids, b: int) -> np.ndarray:
  """i32[B] global item indices (default 0..B-1); ValueError unless B distinct integers >= 0."""
  if item_ids is None:
    return np.arange(b, dtype=np.int32)
  ids = np.asarray(item_ids)
  if ids.shape != (b,) or not np.issubdtype(ids.dtype, np.integer):
    raise ValueError(
      f"item_ids must be {b} integers (one per item), got {ids.dtype}{list(ids.shape)}"
    )
  if ids.size and (ids.min() < 0 or len(np.unique(ids)) != b):
    raise ValueError("item_ids must be distinct integers >= 0: an item's index is its key")
  return ids.astype(np.int32)


def _sample(apply_fn, cfg, params, key, item_ids, z_init, known, known_values):
  b, r = known.shape
  keys = item_keys(key, item_ids)
  state, nfe = run_pass(
    apply_fn, params, keys, z_init, known, known_values, jnp.zeros((b, r), jnp.float32), cfg
  )
  return SampleResult(state.z, state.sigma, nfe, state.start)


_sample_jit = jax.jit(_sample, static_argnums=(0, 1))


def sample(
  apply_fn: Callable,
  params,
  key,
  z_init,
  known_mask,
  known_values,
  config: SamplerConfig = SamplerConfig(),
  *,
  item_ids=None,
  debug: Optional[bool] = None,
  devices=None,
) -> SampleResult:
  """Generate the unknown regions of a batch with the SRM sequential sampler (method 3).

  z_init f32[B, H, W, C] initial noise; known_mask bool[B, R] (True = given, held at
  known_values f32[B, H, W, C]); config static. Compiled once per shapes and config.
  `debug=True` (or IPR_JAX_DEBUG_NANS=1) runs a separately compiled version that stops at the
  first NaN/Inf in the denoiser output or the state (`ipr_jax.debug`). Item b's key is
  fold_in(key, item_ids[b]) (`item_ids` default 0..B-1; pass the global indices when you split
  a set into batches), so its sample does not depend on the batch. The batch is split over
  `devices` (default: all local devices; params replicated), padded to a multiple of their
  number (padding never changes a result); results do not depend on the device count.
  """
  check_batch(z_init, known_mask, "known_mask")
  if np.shape(known_values) != np.shape(z_init):
    raise ValueError(
      f"known_values must have the shape of z_init {np.shape(z_init)}, got {np.shape(known_values)}"
    )
  check_float(z_init, "z_init")
  check_float(known_values, "known_values")
  check_finite(z_init, "z_init")
  check_finite(known_values, "known_values", where=known_mask)
  b = np.shape(z_init)[0]
  ids = check_item_ids(item_ids, b)
  mesh = sharding.batch_mesh(b, devices)
  ids, batch = sharding.pad_batch(
    ids, (z_init, jnp.asarray(known_mask, bool), jnp.asarray(known_values)), mesh
  )
  (params, key), batch = sharding.place(mesh, (params, rng.as_key(key)), (ids, *batch))
  fn = (
    debug_lib.checked(_sample, apply_fn, config)
    if debug_lib.requested(debug)
    else functools.partial(_sample_jit, apply_fn, config)
  )
  res = fn(params, key, *batch)
  if res.x.shape[0] == b:
    return res
  return res.replace(x=res.x[:b], sigma_region=res.sigma_region[:b], order=res.order[:b])
