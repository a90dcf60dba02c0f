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


def probe(apply_fn, params, keys, x, eligible, level: float = 0.4, draws: int = 4):
  """f32[B]: mean predicted sigma over the eligible regions of x f32[B, H, W, C] (eligible
  bool[B, R]) re-noised to `level`, averaged over `draws` noise draws; item b's noise comes
  from keys[b] (one key per item, so a score does not depend on the batch)."""
  check_probe(level, draws)
  b, r = eligible.shape
  grid = sampling.grid_of(x.shape, r)
  chex.assert_shape(keys, (b, *keys.shape[1:]))
  t = jnp.where(eligible, level, 0.0).astype(jnp.float32)
  t_pix = regions.to_pixels(t, grid)
  weight = eligible.astype(jnp.float32)
  total = jnp.zeros((b,), jnp.float32)
  for d in range(draws):
    eps = jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, d), x.shape[1:]))(keys)
    out = apply_fn(params, (1.0 - t_pix) * x + t_pix * eps, t)
    chex.assert_shape(out.sigma_region, (b, r))
    total += jnp.sum(out.sigma_region * weight, axis=-1) / jnp.maximum(weight.sum(-1), 1.0)
  return total / draws
