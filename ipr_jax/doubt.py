"""The model's doubt about a complete sample, probed: a verifier-free score of a finished board.

`probe` re-noises every eligible region of a complete sample to one noise level t (the givens
stay clean at t = 0), asks the denoiser once per noise draw, and returns the mean of its
predicted per-region sigma over the eligible regions, averaged over the draws. A sample the
model would not have made (on unique-solution Sudoku: a wrong board) leaves it unsure how to
restore the regions; a sample that fits the givens does not. Nothing but the model's own output
is read, so a choice among chains by this score uses no verifier (docs/results/sudoku_unique.md:
at t = 0.4, 4 draws, the score separates right from wrong minimal-puzzle boards with AUC ~1).
Costs `draws` network evaluations per sample.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from ipr_jax import regions, sampling


def check_probe(level: float, draws: int) -> None:
  if not 0.0 < level < 1.0:
    raise ValueError(f"probe level must lie in (0, 1), got {level}")
  if int(draws) != draws or draws < 1:
    raise ValueError(f"probe draws must be an integer >= 1, got {draws}")


def eligible_mean(values, eligible):
  """f32[..., B]: the mean of per-region values f32[..., B, R] over each item's eligible
  regions (eligible bool[B, R]); an item with none gives 0. The doubt score of a sample."""
  w = eligible.astype(jnp.float32)
  return jnp.sum(values * w, axis=-1) / jnp.maximum(jnp.sum(w, axis=-1), 1.0)


def probe(apply_fn, params, keys, x, eligible, level: float = 0.4, draws: int = 4):
  """f32[B]: mean predicted sigma over the eligible regions of x f32[B, H, W, C] (eligible
  bool[B, R]) re-noised to `level`, averaged over `draws` noise draws; item b's noise of draw
  d comes from fold_in(keys[b], d) (one key per item, so a score does not depend on the
  batch). The draws go through the denoiser as one batch of draws x B: one network call."""
  check_probe(level, draws)
  b, r = eligible.shape
  grid = sampling.grid_of(x.shape, r)
  chex.assert_shape(keys, (b, *keys.shape[1:]))
  t = jnp.where(eligible, level, 0.0).astype(jnp.float32)
  t_pix = regions.to_pixels(t, grid)
  eps = jax.vmap(  # [draws, B, H, W, C]
    lambda d: jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, d), x.shape[1:]))(keys)
  )(jnp.arange(draws))
  z = (1.0 - t_pix) * x + t_pix * eps
  out = apply_fn(params, z.reshape(draws * b, *x.shape[1:]), jnp.tile(t, (draws, 1)))
  chex.assert_shape(out.sigma_region, (draws * b, r))
  return jnp.mean(eligible_mean(out.sigma_region.reshape(draws, b, r), eligible), axis=0)
