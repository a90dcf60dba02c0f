"""Typicality doubt: a region's doubt read from the denoiser's clean estimate of it.

The SRM sampler generates the region it doubts least first (method 3.1), and the uncertainty
selector re-noises the regions it doubts most (method 4), both by the denoiser's learned sigma.
Over a learned latent space that sigma is mostly doubt about a region's *style* (a digit's
handwriting, which no board constraint settles), so it barely orders the regions: on image
Sudoku, greedy and random orders give nearly the same first pass. The clean estimate
x_hat = z - t u_hat (the model's posterior mean, `flow.x_hat`) says more. When the model is sure
which digit a cell holds but not how it is written, x_hat sits at that digit's typical latent;
when it hesitates between digits, x_hat is a blend between them, where clean latents are rare.
So a region's doubt is the surprise of its x_hat under a density of clean regions: a Gaussian
mixture fitted to the training regions' latents (no labels; `fit`),

    doubt(x) = log p_max - log p(x) >= 0   (nats; p_max = sum_k w_k N(mu_k | mu_k, S_k) >= p(x)).

    mixture = typicality.fit(z_train, components=9)          # f32[N, D] training regions, no labels
    apply_t, params_t = typicality.wrap(apply, params, mixture)   # params_t {"denoiser", "mixture"}
    res = refine.refine(apply_t, params_t, key, x, eligible, cfg)

`with_doubt` changes only `sigma_region` (the sampler's order, the selector's weights, the
picks); velocity and v_interp, so every reverse step's mean and std, stay the denoiser's. The
mixture is an argument, never a constant of the compiled loop. `doubt` is written for one
region; `with_doubt` is the one place it is vmapped over the batch and the regions.
"""

from __future__ import annotations

from typing import Callable

import chex
import jax
import jax.numpy as jnp
import numpy as np

from ipr_jax import flow, regions, sampling
from ipr_jax.denoisers.common import check_output

KEYS = ("means", "precision_cholesky", "log_weights")


def fit(z, components: int, seed: int = 0, reg_covar: float = 1e-3) -> dict:
  """A Gaussian mixture (full covariances, scikit-learn's EM, 3 inits, `seed`) of the rows of
  z f32[N, D], e.g. every training region's latent: {"means" f32[K, D], "precision_cholesky"
  f32[K, D, D] (upper-triangular U_k with S_k^-1 = U_k U_k^T), "log_weights" f32[K]}.
  `reg_covar` is added to every covariance's diagonal. ValueError for a bad z or count."""
  from sklearn.mixture import GaussianMixture

  z = np.asarray(z, np.float64)
  if z.ndim != 2 or not np.isfinite(z).all():
    raise ValueError(f"fit needs finite latents z[N, D], got shape {z.shape}")
  if int(components) != components or not 1 <= components < len(z):
    raise ValueError(f"components must be an integer in [1, N) = [1, {len(z)}), got {components}")
  g = GaussianMixture(
    int(components), covariance_type="full", reg_covar=reg_covar, n_init=3, random_state=seed
  ).fit(z)
  return {
    "means": jnp.asarray(g.means_, jnp.float32),
    "precision_cholesky": jnp.asarray(g.precisions_cholesky_, jnp.float32),
    "log_weights": jnp.asarray(np.log(g.weights_), jnp.float32),
  }


def check(mixture, dim: int | None = None) -> None:
  """ValueError unless `mixture` is a fitted mixture (of `dim`-vectors, if given)."""
  if not isinstance(mixture, dict) or set(mixture) != set(KEYS):
    got = sorted(mixture) if isinstance(mixture, dict) else type(mixture).__name__
    raise ValueError(f"a mixture is a dict with keys {list(KEYS)}, got {got}")
  shapes = {key: np.shape(mixture[key]) for key in KEYS}
  k, d = shapes["means"] if len(shapes["means"]) == 2 else (-1, -1)
  if k < 1 or shapes["precision_cholesky"] != (k, d, d) or shapes["log_weights"] != (k,):
    raise ValueError(f"mixture arrays disagree: shapes {shapes}")
  if dim is not None and d != dim:
    raise ValueError(f"the mixture models {d}-dim regions; these regions have {dim} numbers")


def _component_log_densities(mixture, x):
  """f32[K]: log w_k + log N(x | mu_k, S_k) for one region x f32[D]."""
  u = mixture["precision_cholesky"]
  y = jnp.einsum("kd,kde->ke", x[None, :] - mixture["means"], u)
  log_det = jnp.sum(jnp.log(jnp.diagonal(u, axis1=-2, axis2=-1)), axis=-1)
  return (
    mixture["log_weights"]
    + log_det
    - 0.5 * jnp.sum(y * y, -1)
    - 0.5 * x.shape[0] * jnp.log(2.0 * jnp.pi)
  )


def log_density(mixture, x):
  """f32[]: log p(x) of one region x f32[D] under the mixture."""
  chex.assert_rank(x, 1)
  return jax.nn.logsumexp(_component_log_densities(mixture, x))


def log_peak(mixture):
  """f32[]: log sum_k w_k N(mu_k | mu_k, S_k), an upper bound of log p(x) for every x."""
  u = mixture["precision_cholesky"]
  d = u.shape[-1]
  log_det = jnp.sum(jnp.log(jnp.diagonal(u, axis1=-2, axis2=-1)), axis=-1)
  return jax.nn.logsumexp(mixture["log_weights"] + log_det) - 0.5 * d * jnp.log(2.0 * jnp.pi)


def doubt(mixture, x):
  """f32[] >= 0: log p_max - log p(x), the surprise of one region's clean estimate x f32[D]."""
  return jnp.maximum(log_peak(mixture) - log_density(mixture, x), 0.0)


def with_doubt(apply_fn: Callable) -> Callable:
  """The denoiser `apply_fn(params, z_t, t_region)` with sigma_region f32[B, R] replaced by the
  typicality doubt of each region's clean estimate. The new apply takes params {"denoiser":
  apply_fn's params, "mixture": a `fit` mixture of one region's p*p*C numbers}."""

  def apply(params, z_t, t_region):
    out = apply_fn(params["denoiser"], z_t, t_region)
    check_output(out, z_t, t_region)
    grid = sampling.grid_of(z_t.shape, t_region.shape[-1])
    x_hat = flow.x_hat(z_t, regions.to_pixels(t_region, grid), out.velocity)
    per_region = regions.patchify(x_hat.astype(jnp.float32), grid)  # f32[B, R, p*p*C]
    chex.assert_shape(params["mixture"]["means"], (None, per_region.shape[-1]))
    sigma = jax.vmap(jax.vmap(doubt, in_axes=(None, 0)), in_axes=(None, 0))(
      params["mixture"], per_region
    )
    return out._replace(sigma_region=sigma.astype(jnp.float32))

  return apply


def wrap(apply_fn: Callable, params, mixture) -> tuple[Callable, dict]:
  """(with_doubt(apply_fn), its params {"denoiser": params, "mixture": mixture})."""
  return with_doubt(apply_fn), {"denoiser": params, "mixture": mixture}
