"""Tiny deterministic denoisers for sampler/refine tests (pure functions, batch-independent)."""

import jax.numpy as jnp

from ipr_jax import regions
from ipr_jax.denoisers import DenoiserOutput


def make_tiny(grid: regions.RegionGrid):
  """velocity/v_interp depend smoothly on (z, t); sigma = planted per-region value + a small
  content-dependent term, so greedy order is driven by params['sigma']."""

  def apply(params, z_t, t_region, key=None):
    t = regions.to_pixels(t_region, grid)
    velocity = jnp.tanh(params["a"] * z_t + t) - 0.3 * z_t
    v = 0.5 + 0.2 * jnp.sin(z_t)
    sigma = params["sigma"][None] + 0.01 * jnp.tanh(regions.region_mean(z_t, grid))
    return DenoiserOutput(velocity, v, sigma)

  return apply


def make_exact(grid: regions.RegionGrid, target):
  """Velocity exact for a fixed target x: u = eps - x with eps recovered from z_t."""

  def apply(params, z_t, t_region, key=None):
    t = regions.to_pixels(t_region, grid)
    safe = jnp.where(t > 0, t, 1.0)
    eps = jnp.where(t > 0, (z_t - (1 - t) * target) / safe, 0.0)
    return DenoiserOutput(
      eps - target, jnp.full_like(z_t, 0.5), params["sigma"][None] + 0 * t_region
    )

  return apply
