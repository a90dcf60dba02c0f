"""Verifier-free choices among K refinement chains (`RefineConfig(chains=K)`).

No rule of the task is consulted: the choice uses only the model's own doubt or the chains'
agreement. `lowest_sigma` returns, per sample, the chain whose final sample the model doubts
least (mean sigma over the eligible regions). `region_vote` composes one sample per input from
the chains region by region: each region comes from the chain whose content of that region is
closest to the other chains' (the medoid; for one-hot Sudoku cells, the majority digit). A vote
is usually followed by a refinement round in correction mode, which re-draws regions that do
not fit together.
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp

from ipr_jax import doubt, regions


@jax.jit
def lowest_sigma(xs, sigma, eligible):
  """xs f32[K, B, H, W, C] final samples, sigma f32[K, B, R] their last doubt, eligible
  bool[B, R] -> (x f32[B, H, W, C], chosen chain i32[B])."""
  chex.assert_rank(xs, 5)
  chex.assert_shape(sigma, (xs.shape[0], xs.shape[1], eligible.shape[1]))
  chosen = jnp.argmin(doubt.eligible_mean(sigma, eligible), axis=0)  # of [K, B]
  return jnp.take_along_axis(xs, chosen[None, :, None, None, None], axis=0)[0], chosen


@functools.partial(jax.jit, static_argnums=1)
def region_vote(xs, grid: regions.RegionGrid):
  """xs f32[K, B, H, W, C] -> f32[B, H, W, C]: per sample and region of `grid` the content of
  the medoid chain (least summed squared distance to the other chains' content)."""
  chex.assert_rank(xs, 5)
  k, b = xs.shape[:2]
  patches = regions.patchify(xs.reshape(k * b, *xs.shape[2:]), grid)
  patches = patches.reshape(k, b, grid.num_regions, -1)  # [K, B, R, D]
  # sum_l |p_k - p_l|^2 = K |p_k|^2 - 2 p_k . sum_l p_l + const: no [K, K, ...] intermediate
  dist = k * jnp.sum(patches**2, -1) - 2.0 * jnp.sum(patches * patches.sum(0), -1)  # [K, B, R]
  medoid = jnp.argmin(dist, axis=0)  # [B, R]
  voted = jnp.take_along_axis(patches, medoid[None, ..., None], axis=0)[0]  # [B, R, D]
  return regions.unpatchify(voted, grid)
