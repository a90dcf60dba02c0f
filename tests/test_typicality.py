"""ipr_jax.typicality: the mixture fit, its density against scikit-learn's, the doubt's bound,
the wrapped denoiser (only sigma changes; its doubt per region by hand) and one compile."""

import json
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.mixture import GaussianMixture

from ipr_jax import denoisers, flow, pretrained, regions, sampling, typicality
from ipr_jax import refine as ipr
from tests.tiny import make_exact, make_tiny


def _clusters(n=60, d=3, seed=0):
  """Three well-separated clusters of d-vectors, n points each, and their centres."""
  rng = np.random.default_rng(seed)
  centres = np.array(
    [[4.0] + [0.0] * (d - 1), [-4.0] + [0.0] * (d - 1), [0.0, 5.0] + [0.0] * (d - 2)]
  )
  z = np.concatenate([c + 0.3 * rng.normal(size=(n, d)) for c in centres])
  return z.astype(np.float32), centres


def test_fit_finds_the_clusters_and_matches_sklearn_density():
  z, centres = _clusters()
  mix = typicality.fit(z, components=3, seed=0)
  chex.assert_shape(
    [mix["means"], mix["precision_cholesky"], mix["log_weights"]], [(3, 3), (3, 3, 3), (3,)]
  )
  found = np.asarray(mix["means"])
  for c in centres:  # every centre has a fitted mean next to it
    assert np.min(np.linalg.norm(found - c, axis=1)) < 0.2
  # the oracle: scikit-learn's own density of the same fit (same data, seed and settings)
  g = GaussianMixture(3, covariance_type="full", reg_covar=1e-3, n_init=3, random_state=0).fit(z)
  x = np.random.default_rng(1).normal(size=(20, 3)).astype(np.float32) * 3
  got = jax.vmap(typicality.log_density, in_axes=(None, 0))(mix, jnp.asarray(x))
  np.testing.assert_allclose(got, g.score_samples(x), rtol=1e-4, atol=1e-3)


def test_doubt_is_a_nonnegative_surprise_and_a_blend_is_doubted_more():
  z, centres = _clusters()
  mix = typicality.fit(z, components=3)
  x = jnp.asarray(np.random.default_rng(2).normal(size=(200, 3)) * 4, jnp.float32)
  dens = jax.vmap(typicality.log_density, in_axes=(None, 0))(mix, x)
  assert float(jnp.max(dens)) <= float(typicality.log_peak(mix)) + 1e-5  # p_max bounds p
  d = jax.vmap(typicality.doubt, in_axes=(None, 0))(mix, x)
  assert bool(jnp.all(d >= 0))
  sure = typicality.doubt(mix, jnp.asarray(centres[0], jnp.float32))
  blend = typicality.doubt(mix, jnp.asarray(0.5 * (centres[0] + centres[2]), jnp.float32))
  assert float(sure) < 2.0 < 10.0 < float(blend)


def test_bad_fit_input_and_bad_mixture_are_named_errors():
  z, _ = _clusters(n=5)
  with pytest.raises(ValueError, match="components"):
    typicality.fit(z, components=len(z))
  with pytest.raises(ValueError, match="components"):
    typicality.fit(z, components=2.5)
  with pytest.raises(ValueError, match="finite"):
    typicality.fit(np.where(np.arange(z.size).reshape(z.shape) == 3, np.nan, z), components=2)
  with pytest.raises(ValueError, match="z\\[N, D\\]"):
    typicality.fit(z[0], components=1)
  mix = typicality.fit(z, components=2)
  with pytest.raises(ValueError, match="keys"):
    typicality.check({"means": mix["means"]})
  with pytest.raises(ValueError, match="disagree"):
    typicality.check(dict(mix, log_weights=jnp.zeros(5)))
  with pytest.raises(ValueError, match="disagree"):
    typicality.check(dict(mix, means=jnp.zeros(3)))
  with pytest.raises(ValueError, match="3-dim regions; these regions have 4"):
    typicality.check(mix, dim=4)
  typicality.check(mix, dim=3)


def test_with_doubt_changes_only_sigma_to_the_doubt_of_each_clean_estimate():
  grid = regions.make_grid(2, 3, 1)
  apply = make_tiny(grid)
  params = {"a": jnp.float32(0.7), "sigma": jnp.linspace(0.1, 1.0, 6)}
  z, _ = _clusters()
  mix = typicality.fit(z, components=3)
  wrapped = typicality.with_doubt(apply)
  z_t = jax.random.normal(jax.random.key(0), (2, 2, 3, 3))
  t = jax.random.uniform(jax.random.key(1), (2, 6))
  out = apply(params, z_t, t)
  got = wrapped({"denoiser": params, "mixture": mix}, z_t, t)
  np.testing.assert_array_equal(got.velocity, out.velocity)
  np.testing.assert_array_equal(got.v_interp, out.v_interp)
  x_hat = np.asarray(flow.x_hat(z_t, regions.to_pixels(t, grid), out.velocity))
  for b in range(2):  # by hand, one region at a time
    for i in range(6):
      want = typicality.doubt(mix, jnp.asarray(x_hat[b, i // 3, i % 3]))
      np.testing.assert_allclose(got.sigma_region[b, i], want, rtol=1e-5, atol=1e-5)


def test_with_doubt_orders_the_sampler_by_the_clean_estimate():
  """With an exact denoiser, every clean estimate is its target: the sampler starts the region
  whose target is most typical first, whatever the denoiser's own sigma says."""
  z, centres = _clusters()  # 3-dim regions: 1x1 patches of 3 channels
  mix = typicality.fit(z, components=3)
  grid = regions.make_grid(1, 4, 1)
  targets = np.stack(
    [centres[0] + 3.0, 0.5 * (centres[0] + centres[1]), centres[2], centres[1] + 1.0]
  ).astype(np.float32)
  target = jnp.asarray(targets.reshape(1, 1, 4, 3))
  apply = typicality.with_doubt(make_exact(grid, target))
  params = {"denoiser": {"sigma": jnp.asarray([0.1, 0.2, 0.3, 0.4])}, "mixture": mix}
  cfg = sampling.SamplerConfig(steps_per_patch=2)
  res = sampling.sample(
    apply,
    params,
    jax.random.key(0),
    jax.random.normal(jax.random.key(1), target.shape),
    jnp.zeros((1, 4), bool),
    jnp.zeros_like(target),
    cfg,
  )
  doubts = [float(typicality.doubt(mix, jnp.asarray(x))) for x in targets]
  assert np.argsort(np.asarray(res.order[0])).tolist() == np.argsort(doubts).tolist()


def test_refine_with_doubt_compiles_once_and_takes_new_mixtures():
  grid = regions.make_grid(2, 3, 1)
  apply = chex.assert_max_traces(typicality.with_doubt(make_tiny(grid)), n=2)
  cfg = ipr.RefineConfig(
    rounds=2,
    selector="uncertainty",
    initial=sampling.SamplerConfig(steps_per_patch=2),
    ipr=sampling.SamplerConfig(steps_per_patch=2),
  )
  chex.clear_trace_counter()
  sigmas = []
  for seed in range(3):
    z, _ = _clusters(seed=seed)
    mix = typicality.fit(z, components=3, seed=seed)
    params = {
      "denoiser": {"a": jnp.float32(0.3), "sigma": jnp.linspace(0.1, 1.0, 6)},
      "mixture": mix,
    }
    x = jax.random.normal(jax.random.key(seed), (2, 2, 3, 3))
    res = ipr.refine(apply, params, jax.random.key(seed), x, jnp.ones((2, 6), bool), cfg)
    chex.assert_shape(res.x, (2, 2, 3, 3))
    sigmas.append(np.asarray(res.sigma))
  assert not np.allclose(sigmas[0], sigmas[1])  # the mixture is an argument, not a constant


def test_a_shipped_mixture_round_trips_and_load_wraps_by_the_manifest(tmp_path):
  """save_mixture / load_mixture (sha256 checked); load(doubt=...) wraps the denoiser with the
  shipped mixture, by name or by the manifest's recommended_doubt; bad names are errors."""
  model = denoisers.TransformerConfig(
    height=2, width=2, channels=3, patch=1, dim=8, depth=1, heads=2
  )
  apply, params = denoisers.build(model, jax.random.key(0))
  root = str(tmp_path)
  pretrained.save("m", params, denoisers.to_dict(model), {"name": "m"}, root=root)
  with pytest.raises(ValueError, match="ships no typicality mixture"):
    pretrained.load("m", root=root, doubt="typicality")
  z, _ = _clusters()
  mix = typicality.fit(z, components=3)
  pretrained.save_mixture(os.path.join(root, "m"), mix, {"fit": "test clusters"})
  man = pretrained.manifest("m", root)
  assert man["typicality"]["components"] == 3 and man["typicality"]["fit"] == "test clusters"
  got = pretrained.load_mixture("m", root)
  for k in typicality.KEYS:
    np.testing.assert_array_equal(got[k], mix[k])
  z_t = jax.random.normal(jax.random.key(1), (1, 2, 2, 3))
  t = jnp.full((1, 4), 0.5)
  plain = apply(params, z_t, t)
  for doubt, wrapped in (("model", False), ("recommended", False), ("typicality", True)):
    f, p, _ = pretrained.load("m", root=root, doubt=doubt)
    out = f(p, z_t, t)
    np.testing.assert_allclose(out.velocity, plain.velocity, atol=1e-6)
    assert wrapped == (set(p) == {"denoiser", "mixture"})
    assert wrapped == (not np.allclose(out.sigma_region, plain.sigma_region))
  path = os.path.join(root, "m", "manifest.json")
  json.dump(dict(man, recommended_doubt="typicality"), open(path, "w"))
  assert set(pretrained.load("m", root=root, doubt="recommended")[1]) == {"denoiser", "mixture"}
  json.dump(dict(man, recommended_doubt="oracle"), open(path, "w"))
  with pytest.raises(ValueError, match="recommended_doubt must be one of"):
    pretrained.load("m", root=root, doubt="recommended")
  with pytest.raises(ValueError, match="doubt must be one of"):
    pretrained.load("m", root=root, doubt="sigma")
  with open(os.path.join(root, "m", pretrained.TYPICALITY_FILE), "ab") as f:
    f.write(b"tampered")
  with pytest.raises(ValueError, match="sha256"):
    pretrained.load_mixture("m", root)
