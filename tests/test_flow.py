import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ipr_jax import flow


def _rand(seed, n=512):
  k = jax.random.split(jax.random.key(seed), 5)
  t = jax.random.uniform(k[0], (n,))
  s = t * jax.random.uniform(k[1], (n,))
  z = jax.random.normal(k[2], (n,))
  u = jax.random.normal(k[3], (n,))
  v = jax.random.uniform(k[4], (n,))
  return t, s, z, u, v


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5, 1.0])
def test_gamma_sigma_identity(alpha):
  t, s, *_ = _rand(0)
  g, sm = flow.gamma(t, s, alpha), flow.sigma_small(t, s, alpha)
  np.testing.assert_allclose(g**2 + sm**2, s**2, atol=1e-6)


def test_alpha_zero_is_euler():
  t, s, z, u, v = _rand(1)
  for variance in flow.VARIANCE_MODES:
    mean, std = flow.reverse_kernel(z, t, s, u, v, alpha=0.0, variance=variance)
    np.testing.assert_allclose(mean, z - (t - s) * u, atol=1e-5)
    np.testing.assert_array_equal(std, 0.0)


def test_t_equals_s_is_identity():
  t, _, z, u, v = _rand(2)
  t = t.at[:3].set(jnp.array([0.0, 1.0, 0.5]))
  mean, std = flow.reverse_kernel(z, t, t, u, v, alpha=0.5)
  np.testing.assert_array_equal(mean, z)
  np.testing.assert_array_equal(std, 0.0)


def test_alpha_one_fixed_small_is_ddpm_posterior():
  t, s, z, u, v = _rand(3)
  t = jnp.clip(t, 0.05, 0.95)
  s = t * 0.5
  mean, std = flow.reverse_kernel(z, t, s, u, None, alpha=1.0, variance="fixed_small")
  x_hat, e_hat = flow.x_hat(z, t, u), flow.eps_hat(z, t, u)
  # DDPM posterior q(z_s | z_t, x) with a = 1 - t, b = t (variance-exploding in b/a form).
  a_t, b_t, a_s, b_s = 1 - t, t, 1 - s, s
  a_ts = a_t / a_s
  var_ts = b_t**2 - a_ts**2 * b_s**2
  post_mean = (a_ts * b_s**2 / b_t**2) * z + (a_s * var_ts / b_t**2) * x_hat
  post_std = jnp.sqrt(var_ts * b_s**2 / b_t**2)
  np.testing.assert_allclose(mean, post_mean, atol=1e-4)
  np.testing.assert_allclose(std, post_std, atol=1e-5)
  del e_hat


def test_learned_range_interpolates_log_std():
  t, s, z, u, _ = _rand(4)
  t, s = jnp.clip(t, 0.1, 0.9), jnp.clip(s, 0.05, 0.09)
  lo = flow.reverse_kernel(z, t, s, u, jnp.zeros_like(t), alpha=0.5)[1]
  hi = flow.reverse_kernel(z, t, s, u, jnp.ones_like(t), alpha=0.5)[1]
  mid = flow.reverse_kernel(z, t, s, u, jnp.full_like(t, 0.5), alpha=0.5)[1]
  np.testing.assert_allclose(lo, flow.sigma_small(t, s, 0.5), rtol=1e-5)
  np.testing.assert_allclose(hi, flow.sigma_large(t, s, 0.5), rtol=1e-5)
  np.testing.assert_allclose(mid, jnp.sqrt(lo * hi), rtol=1e-5)
  tau = flow.reverse_kernel(z, t, s, u, jnp.full_like(t, 0.5), alpha=0.5, temperature=2.0)[1]
  np.testing.assert_allclose(tau, 2 * mid, rtol=1e-6)


@pytest.mark.parametrize("variance", flow.VARIANCE_MODES)
def test_no_nan_at_edges(variance):
  t = jnp.array([0.0, 1.0, 1.0, 0.5, 0.3, 0.0])
  s = jnp.array([0.0, 1.0, 0.5, 0.5, 0.0, 0.0])
  z, u, v = jnp.ones(6) * 0.3, jnp.ones(6) * -0.2, jnp.ones(6) * 0.4

  def f(t, s, z, u, v, alpha):
    mean, std = flow.reverse_kernel(z, t, s, u, v, alpha=alpha, variance=variance)
    return jnp.sum(mean) + jnp.sum(std)

  for alpha in (0.0, 0.5, 1.0):
    val = f(t, s, z, u, v, alpha)
    grads = jax.grad(f, argnums=(0, 1, 2, 3, 4, 5))(t, s, z, u, v, alpha)
    assert np.isfinite(val)
    for g in grads:
      assert np.all(np.isfinite(g)), (variance, alpha, grads)


def test_reverse_step_uses_mean_at_s_zero():
  t, s, z, u, v = _rand(5, n=64)
  s = s.at[:32].set(0.0)
  out = flow.reverse_step(jax.random.key(0), z, t, s, u, v, alpha=0.5)
  mean, std = flow.reverse_kernel(z, t, s, u, v, alpha=0.5)
  np.testing.assert_array_equal(out[:32], mean[:32])
  assert np.all(np.abs(out[32:] - mean[32:]) > 0)


def test_bad_input():
  with pytest.raises(ValueError, match="variance"):
    flow.reverse_kernel(0.0, 0.5, 0.2, 0.0, 0.5, alpha=0.5, variance="learned")
  with pytest.raises(ValueError, match="alpha"):
    flow.reverse_kernel(0.0, 0.5, 0.2, 0.0, 0.5, alpha=1.5)
  with pytest.raises(ValueError, match="v_interp"):
    flow.reverse_kernel(0.0, 0.5, 0.2, 0.0, None, alpha=0.5)
