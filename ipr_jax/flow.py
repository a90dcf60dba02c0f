"""Rectified flow maths (method 1.2 and 3.4).

Per pixel: z_t = (1 - t) x + t eps, t = 0 clean, t = 1 pure noise; the network predicts the
velocity u = eps - x ("ut" parameterisation). All functions broadcast over their array
arguments, so they serve one pixel, one region or a whole batch alike.

Divisions are guarded with `where` *before* dividing (and square roots before the root), so no
NaN reaches values or gradients at t = 0, s = 1 or t = s.

Contracts (chex, checked when traced): images and their velocities share one shape, noise levels
broadcast onto it (f32[..., H, W, 1] per pixel, or scalars), everything is floating point.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

VARIANCE_MODES = ("learned_range", "fixed_small", "fixed_large")


def _shaped(*values):
  """Python scalars as 0-d arrays, so that chex can read their shape."""
  return [v if hasattr(v, "shape") else jnp.asarray(v) for v in values]


def _check_field(a, b, t=None):
  """a and b: the same shape and floating; t (if given) broadcasts onto them."""
  a, b = _shaped(a, b)
  chex.assert_equal_shape([a, b])
  chex.assert_type([a, b], float)
  if t is not None:
    chex.assert_is_broadcastable(jnp.shape(t), jnp.shape(a))


def interpolate(x, eps, t):
  """z_t = (1 - t) x + t eps (method 1.2)."""
  _check_field(x, eps, t)
  return (1.0 - t) * x + t * eps


def velocity_target(x, eps):
  """u = dz/dt = eps - x (method 1.2)."""
  _check_field(x, eps)
  return eps - x


def x_hat(z_t, t, velocity):
  """Predicted clean data x_hat = z - t u_hat."""
  _check_field(z_t, velocity, t)
  return z_t - t * velocity


def eps_hat(z_t, t, velocity):
  """Predicted noise eps_hat = z + (1 - t) u_hat."""
  _check_field(z_t, velocity, t)
  return z_t + (1.0 - t) * velocity


def _safe_sqrt(v):
  pos = v > 0
  return jnp.where(pos, jnp.sqrt(jnp.where(pos, v, 1.0)), 0.0)


def _one_minus_r2(t, s):
  """1 - r^2 with r = (1 - t) s / ((1 - s) t); 0 where t = 0 or s = 1 (no transition noise)."""
  valid = (t > 0) & (s < 1)
  den = jnp.where(valid, (1.0 - s) * t, 1.0)
  r = jnp.where(valid, (1.0 - t) * s / den, 1.0)
  return valid, jnp.clip(1.0 - r * r, 0.0, 1.0)


def sigma_small(t, s, alpha):
  """alpha s sqrt(1 - r^2), 0 where t = 0 or s = 1 (method 3.4)."""
  valid, q = _one_minus_r2(t, s)
  return jnp.where(valid, alpha * s * _safe_sqrt(q), 0.0)


def sigma_large(t, s, alpha):
  """alpha t sqrt(1 - r^2), 0 where t = 0 or s = 1 (method 3.4)."""
  valid, q = _one_minus_r2(t, s)
  return jnp.where(valid, alpha * t * _safe_sqrt(q), 0.0)


def gamma(t, s, alpha):
  """Noise coefficient of the mean: s sqrt(1 - alpha^2 (1 - r^2)); 0 at t = 0, s at s = 1."""
  valid, q = _one_minus_r2(t, s)
  g = s * _safe_sqrt(1.0 - alpha * alpha * q)
  g = jnp.where(s >= 1, s, g)
  return jnp.where(t <= 0, 0.0, g)


def _safe_log(v):
  return jnp.log(jnp.where(v > 0, v, 1.0))


def check_variance(variance: str) -> None:
  if variance not in VARIANCE_MODES:
    raise ValueError(f"variance must be one of {VARIANCE_MODES}, got {variance!r}")


def check_alpha(alpha) -> None:
  if isinstance(alpha, (int, float)) and not 0.0 <= alpha <= 1.0:
    raise ValueError(f"alpha must lie in [0, 1], got {alpha}")


def reverse_kernel(
  z_t, t, s, velocity, v_interp, *, alpha, temperature=1.0, variance="learned_range"
):
  """Gaussian p(z_s | z_t) of method 3.4: returns (mean, std), broadcast over the arguments.

  mean = (1 - s) x_hat + gamma eps_hat. std: learned_range interpolates log sigma between
  sigma_small and sigma_large with weight v_interp (not clamped, as in the reference);
  fixed_small / fixed_large take one end. std is multiplied by `temperature`. Where t = s the
  step is the exact identity (mean = z_t, std = 0), so waiting and finished regions stay bitwise.
  The e^-30 variance floor of method 1.5 applies where a log-density is taken (losses.py).
  """
  check_variance(variance)
  check_alpha(alpha)
  chex.assert_equal_shape(_shaped(t, s))  # z_t, velocity and t are checked by x_hat below
  if v_interp is not None:
    chex.assert_equal_shape(_shaped(z_t, v_interp))
  mean = (1.0 - s) * x_hat(z_t, t, velocity) + gamma(t, s, alpha) * eps_hat(z_t, t, velocity)
  lo, hi = sigma_small(t, s, alpha), sigma_large(t, s, alpha)
  if variance == "fixed_small":
    std = lo
  elif variance == "fixed_large":
    std = hi
  else:
    if v_interp is None:
      raise ValueError("v_interp is required for variance='learned_range'")
    both = (lo > 0) & (hi > 0)
    log_std = v_interp * _safe_log(hi) + (1.0 - v_interp) * _safe_log(lo)
    std = jnp.where(both, jnp.exp(jnp.where(both, log_std, 0.0)), 0.0)
  same = t == s
  mean = jnp.where(same, z_t, mean)
  std = jnp.where(same, 0.0, temperature * std)
  return mean, std


def reverse_step(
  key,
  z_t,
  t,
  s,
  velocity,
  v_interp,
  *,
  alpha,
  temperature=1.0,
  variance="learned_range",
  noise=None,
):
  """Draw z_s ~ p(z_s | z_t); the mean (no noise) where s = 0 (method 3.2 step 3). `noise`
  (standard normal, the shape of z_t) replaces the draw from `key`: common random numbers, or
  another implementation's draw when comparing against it."""
  mean, std = reverse_kernel(
    z_t, t, s, velocity, v_interp, alpha=alpha, temperature=temperature, variance=variance
  )
  if noise is None:
    noise = jax.random.normal(key, jnp.shape(mean), jnp.result_type(mean))
  chex.assert_equal_shape(_shaped(mean, noise))
  return jnp.where(s <= 0, mean, mean + std * noise)
