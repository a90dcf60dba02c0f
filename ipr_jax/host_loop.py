"""The sampler and IPR written literally, the way the PyTorch reference runs them: one sample at
a time, the [M + 1, R] schedule matrix, the step loop and the greedy selection in Python, one
jitted network call and one jitted reverse step per step (the sample stays a device array; the
sigmas come to the host at selection steps). Slow on purpose. It is the oracle the compiled
`lax.scan` versions are tested against (same keys: the same regions at the same steps, values to
float rounding) and the "reference design" the speed benchmark compares with. Greedy order only.
"""

from __future__ import annotations

import functools
import random

import jax
import jax.numpy as jnp
import numpy as np

from ipr_jax import flow, refine as refine_lib, regions, rng, sampling, schedules


@functools.lru_cache(maxsize=16)
def _mover(grid: regions.RegionGrid, alpha: float, temperature: float, variance: str):
  @jax.jit
  def move(key, z, t, s, out, known, values):
    z = flow.reverse_step(
      key,
      z[0],
      regions.to_pixels(t, grid)[0],
      regions.to_pixels(s, grid)[0],
      out.velocity[0],
      out.v_interp[0],
      alpha=alpha,
      temperature=temperature,
      variance=variance,
    )[None]
    return regions.impose_known(z, known, values, grid)

  return move


def sample_one(net, params, key, z, known, values, cfg: sampling.SamplerConfig):
  """One sample (z, values f32[1, H, W, C], known bool[1, R]) through method 3.2 step by step with
  `net` (a jitted apply). Returns (z f32[1, H, W, C], start i32[R], nfe)."""
  if cfg.order != "greedy" or cfg.top_k != 1:
    raise ValueError("the host loop implements the greedy order with top_k = 1 only")
  grid = sampling.grid_of(np.shape(z), np.shape(known)[-1])
  move = _mover(grid, cfg.alpha, cfg.temperature, cfg.variance)
  unknown = ~np.asarray(known[0])
  start = np.full(unknown.shape, schedules.NEVER)
  n = int(unknown.sum())
  plan = schedules.sequential_plan(n, cfg.steps_per_patch, cfg.overlap)
  m, lc = plan.total_steps, plan.proto_len
  T = np.tile(np.where(unknown, 1.0, 0.0).astype(np.float32), (m + 1, 1))
  T[m] = 0.0
  z = regions.impose_known(jnp.asarray(z), jnp.asarray(known), jnp.asarray(values), grid)
  c = 0
  for r in range(m):
    t = jnp.asarray(T[r])[None]  # host -> device
    out = net(params, z, t)
    while c < n and plan.block_starts[c] == r:
      j = int(np.argmin(np.where(unknown, np.asarray(out.sigma_region[0]), np.inf)))  # -> host
      unknown[j] = False
      start[j] = r
      for i in range(min(lc, m - r)):
        T[r + i, j] = min(np.float32(lc - i) / np.float32(lc), T[r + i, j])
      T[r + lc : m, j] = 0.0
      c += 1
    z = move(jax.random.fold_in(key, r), z, t, jnp.asarray(T[r + 1])[None], out, known, values)
  return z, start, m


def sample(apply, params, key, z_init, known_mask, known_values, cfg: sampling.SamplerConfig):
  """The batch one sample at a time, with the per-sample keys of `sampling.sample`:
  returns (x f32[B, H, W, C], start i32[B, R]) to compare with its `x` and `order`."""
  net = jax.jit(apply)
  keys = sampling.item_keys(rng.as_key(key), np.arange(z_init.shape[0]))
  outs = [
    sample_one(
      net, params, keys[b], z_init[b : b + 1], known_mask[b : b + 1], known_values[b : b + 1], cfg
    )
    for b in range(z_init.shape[0])
  ]
  return jnp.concatenate([o[0] for o in outs]), np.stack([o[1] for o in outs])


def refine_one(net, params, seed: int, x, eligible, cfg: refine_lib.RefineConfig):
  """IPR for one sample (x f32[1, H, W, C], eligible bool[1, R]) the reference's way: the round-0
  pass, then per round a Python draw of m regions, fresh host noise, a host-loop pass. Returns
  (x, nfe). Its random streams are its own (Python / NumPy), not `refine`'s."""
  draws = random.Random(seed)
  key = jax.random.key(seed)
  elig = np.asarray(eligible, bool)
  z = np.asarray(jax.random.normal(jax.random.fold_in(key, 0), np.shape(x)))
  x, _, nfe = sample_one(net, params, jax.random.fold_in(key, 1), z, ~elig, x, cfg.initial)
  cells = list(np.flatnonzero(elig[0]))
  grid = sampling.grid_of(np.shape(x), elig.shape[-1])
  for b in range(cfg.rounds):
    chosen = draws.sample(cells, refine_lib.num_resampled(len(cells), cfg.resampling_ratio))
    sel = np.zeros_like(elig)
    sel[0, chosen] = True
    noise = np.random.default_rng(draws.randrange(2**32)).standard_normal(np.shape(x))
    z = np.where(np.asarray(regions.to_pixels(sel, grid)), noise.astype(np.float32), np.asarray(x))
    x, _, m = sample_one(net, params, jax.random.fold_in(key, 2 + b), z, ~sel, x, cfg.ipr)
    nfe += m
  return x, nfe
