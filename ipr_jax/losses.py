"""SRM training loss (method 1.5): L = L_mu + 1.0 L_vlb + 0.01 L_sigma.

- L_mu: mean over all pixels and channels of w (u_hat - (eps - x))^2 (w = 0 pixels stay in the
  denominator).
- L_vlb (step > 0): KL(q || p_theta) in bits, q the true alpha = 1 posterior, p_theta the reverse
  Gaussian built from stop_grad(u_hat) and v_theta; on s = t - 1e-3 < 1e-5 the discretised
  -log p_theta(x) on 8-bit bins instead. Trains only v_theta.
- L_sigma (step > 0): Gaussian NLL of u under N(stop_grad(u_hat), sigma_theta^2); trains sigma only.
Every log-variance is clamped to [-30, 20].
"""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp

from ipr_jax import flow, regions

LOGVAR_MIN, LOGVAR_MAX = -30.0, 20.0


def _logvar(std):
  return jnp.clip(2.0 * jnp.log(jnp.maximum(std, 1e-30)), LOGVAR_MIN, LOGVAR_MAX)


def normal_kl(mean1, logvar1, mean2, logvar2):
  """KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)) per element, in nats."""
  return 0.5 * (
    -1.0 + logvar2 - logvar1 + jnp.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * jnp.exp(-logvar2)
  )


def _approx_cdf(x):
  return 0.5 * (1.0 + jnp.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def discretized_nll(x, mean, logvar):
  """-log p(x) of a Gaussian integrated over 8-bit bins of half-width 1/255, x in [-1, 1]."""
  inv = jnp.exp(-0.5 * logvar)
  cdf_plus = _approx_cdf(inv * (x - mean + 1.0 / 255.0))
  cdf_min = _approx_cdf(inv * (x - mean - 1.0 / 255.0))
  log_cdf_plus = jnp.log(jnp.maximum(cdf_plus, 1e-12))
  log_one_minus_cdf_min = jnp.log(jnp.maximum(1.0 - cdf_min, 1e-12))
  log_delta = jnp.log(jnp.maximum(cdf_plus - cdf_min, 1e-12))
  logp = jnp.where(x < -0.999, log_cdf_plus, jnp.where(x > 0.999, log_one_minus_cdf_min, log_delta))
  return -logp


def vlb_term(x, eps, z_t, t, velocity, v_interp):
  """Per-pixel VLB term in bits (before weighting), with u_hat already stop-gradiented."""
  s = t - 1e-3
  nll_branch = s < 1e-5
  s = jnp.where(nll_branch, 0.0, s)
  mean_p, std_p = flow.reverse_kernel(z_t, t, s, velocity, v_interp, alpha=1.0)
  mean_q = (1.0 - s) * x + flow.gamma(t, s, 1.0) * eps
  std_q = flow.sigma_small(t, s, 1.0)
  kl = normal_kl(mean_q, _logvar(std_q), mean_p, _logvar(std_p))
  nll = discretized_nll(x, mean_p, _logvar(std_p))
  return jnp.where(nll_branch, nll, kl) / math.log(2.0)


def srm_loss(
  out,
  x,
  eps,
  t_region,
  w_region,
  grid: regions.RegionGrid,
  *,
  step,
  vlb_weight: float = 1.0,
  sigma_weight: float = 0.01,
):
  """Loss of one batch from the denoiser output `out` on z_t = (1 - t) x + t eps.

  x, eps f32[B, H, W, C]; t_region, w_region f32[B, R] (already multiplied by the mask when
  givens are used). Returns (loss, metrics dict).
  """
  b = x.shape[0]
  chex.assert_shape([x, eps, out.velocity, out.v_interp], (b, grid.height, grid.width, None))
  chex.assert_equal_shape([x, eps, out.velocity, out.v_interp])
  chex.assert_shape([t_region, w_region, out.sigma_region], (b, grid.num_regions))
  chex.assert_type([x, eps, out.velocity, t_region, w_region], float)
  t = regions.to_pixels(t_region, grid)
  w = regions.to_pixels(w_region, grid)
  z_t = flow.interpolate(x, eps, t)
  u = flow.velocity_target(x, eps)
  u_hat = jax.lax.stop_gradient(out.velocity)
  loss_mu = jnp.mean(w * (out.velocity - u) ** 2)
  on = (step > 0).astype(x.dtype)
  loss_vlb = jnp.mean(w * vlb_term(x, eps, z_t, t, u_hat, out.v_interp))
  sigma = regions.to_pixels(out.sigma_region, grid)
  logvar = _logvar(sigma)
  nll = 0.5 * (math.log(2 * math.pi) + logvar + (u - u_hat) ** 2 * jnp.exp(-logvar))
  loss_sigma = jnp.mean(w * nll)
  loss = loss_mu + on * (vlb_weight * loss_vlb + sigma_weight * loss_sigma)
  return loss, {"loss": loss, "loss_mu": loss_mu, "loss_vlb": loss_vlb, "loss_sigma": loss_sigma}
