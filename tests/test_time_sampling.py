import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ipr_jax import time_sampling as ts


def test_beta_concentrations_of_spec():
  assert ts.beta_concentration(81, 1.0) == pytest.approx(98.3, abs=0.05)
  assert ts.beta_concentration(64, 0.75) == pytest.approx(58.1, abs=0.05)
  assert ts.beta_concentration(256, 0.5) == pytest.approx(168.2, abs=0.05)
  assert ts.beta_concentration(2, 0.7) == pytest.approx(0.7)
  assert ts.beta_concentration(3, 0.7) == pytest.approx(0.7)


@pytest.mark.parametrize("r,sharp", [(81, 1.0), (64, 0.75), (7, 0.5)])
def test_mean_beta_range_and_exact_mean(r, sharp):
  t, m = jax.jit(ts.mean_beta_raw, static_argnums=(1, 2, 3))(jax.random.key(0), 64, r, sharp)
  assert t.shape == (64, r)
  assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0
  np.testing.assert_allclose(t.mean(axis=1), m, atol=1e-5)
  # permuted: the position of the largest value varies across images
  assert len(set(np.argmax(np.asarray(t), axis=1).tolist())) >= min(8, r)


def test_add_zeros_zeroes_the_drawn_count():
  cfg = ts.TimeSamplerConfig("independent", add_zeros=True)
  key = jax.random.key(3)
  t, w = ts.sample_times(key, 256, 64, cfg)
  # recompute the cut-off r of each image from the same key path
  _, k_z = jax.random.split(key)
  k_r, _ = jax.random.split(k_z)
  cut = np.asarray(jax.random.uniform(k_r, (256, 1)))[:, 0]
  expected = np.array([np.sum((np.arange(1, 65) / 64) < c) for c in cut])
  np.testing.assert_array_equal(np.sum(np.asarray(t) == 0, axis=1), expected)
  np.testing.assert_array_equal(np.asarray(w) == 0, np.asarray(t) == 0)
  assert expected.min() < 10 and expected.max() > 50


def test_zeros_power_leaves_fewer_regions_to_generate():
  """zeros_power a: the cleaned fraction is u ** (1/a), mean a / (a + 1) (1/2 for the papers'
  a = 1); the same key gives the same images their cut-off in the same order."""
  spec = ts.TimeSamplerConfig("independent", add_zeros=True)
  more = ts.TimeSamplerConfig("independent", add_zeros=True, zeros_power=3.0)
  key = jax.random.key(5)
  zeros = {
    a: np.mean(np.asarray(ts.sample_times(key, 4096, 64, cfg)[0]) == 0, axis=1)
    for a, cfg in ((1, spec), (3, more))
  }
  assert abs(zeros[1].mean() - (0.5 - 0.5 / 64)) < 0.02  # #{k: (k + 1)/64 < u}
  assert abs(zeros[3].mean() - (0.75 - 0.5 / 64)) < 0.02
  assert (zeros[3] >= zeros[1]).all()  # u ** (1/3) >= u: never fewer zeros
  assert np.mean(zeros[3] >= 60 / 64) > 2.5 * np.mean(zeros[1] >= 60 / 64)
  with pytest.raises(ValueError, match="zeros_power must be > 0"):
    ts.TimeSamplerConfig("independent", add_zeros=True, zeros_power=0.0)
  with pytest.raises(ValueError, match="add_zeros is off"):
    ts.TimeSamplerConfig("mean_beta", zeros_power=2.0)


def test_weights_one_for_shared_and_independent():
  for kind in ("shared", "independent"):
    t, w = ts.sample_times(
      jax.random.key(0), 16, 10, ts.TimeSamplerConfig(kind), jnp.full(1000, 3.0)
    )
    np.testing.assert_array_equal(w, 1.0)
  t, _ = ts.sample_times(jax.random.key(0), 16, 10, ts.TimeSamplerConfig("shared"))
  np.testing.assert_array_equal(t, jnp.broadcast_to(t[:, :1], t.shape))


def test_density_weights_flatten_the_marginal():
  pdf = ts.mean_beta_density(jax.random.key(0), 16, 1.0, num_images=20_000)
  assert pdf.shape == (1000,) and abs(pdf.mean() - 1) < 1e-4
  t, w = ts.sample_times(jax.random.key(1), 4096, 16, ts.TimeSamplerConfig("mean_beta"), pdf)
  # importance weights make the weighted histogram of t close to uniform
  hist, _ = np.histogram(np.asarray(t), bins=10, range=(0, 1), weights=np.asarray(w))
  hist = hist / hist.mean()
  raw, _ = np.histogram(np.asarray(t), bins=10, range=(0, 1))
  raw = raw / raw.mean()
  assert np.abs(hist - 1).max() < 0.2 < np.abs(raw - 1).max()


def test_bad_config():
  with pytest.raises(ValueError, match="kind"):
    ts.TimeSamplerConfig("uniform")
  with pytest.raises(ValueError, match="num_images"):
    ts.mean_beta_density(jax.random.key(0), 81, 1.0, num_images=10)


def test_board_beta_is_iid_around_one_board_mean():
  cfg = ts.TimeSamplerConfig("board_beta", concentration=20.0)
  t, w = ts.sample_times(jax.random.key(5), 2048, 81, cfg, jnp.full(1000, 3.0))
  t = np.asarray(t)
  np.testing.assert_array_equal(w, 1.0)  # no density weights, even when a pdf is passed
  assert t.shape == (2048, 81) and t.min() >= 0.0 and t.max() <= 1.0
  means = t.mean(axis=1)
  # board means spread over (0.01, 0.99); within a board, Beta(c m, c(1-m)) has variance
  # m (1 - m) / (c + 1), far below the spread of U(0, 1) (1 / 12)
  assert means.min() < 0.1 and means.max() > 0.9
  within = t.var(axis=1)
  np.testing.assert_allclose(within.mean(), np.mean(means * (1 - means)) / 21, rtol=0.1)
  with pytest.raises(ValueError, match="concentration"):
    ts.TimeSamplerConfig("board_beta", concentration=0.0)
