"""ipr_jax.latents: the per-region codec (shapes, training, round trips, refine over latents)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ipr_jax import latents, pretrained, regions, sampling
from ipr_jax import refine as ipr
from tests.tiny import make_tiny

CFG = latents.CodecConfig(patch=8, latent_dim=4, width=4)


def _digits(n=6, seed=0):
  """Blob-like 8x8 tiles in [-1, 1] (smooth, so a tiny codec learns them in a few steps)."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[:8, :8]
  c = rng.uniform(2, 6, size=(n, 2))
  r = rng.uniform(1.5, 3.0, size=n)
  d = np.sqrt((yy[None] - c[:, 0, None, None]) ** 2 + (xx[None] - c[:, 1, None, None]) ** 2)
  return np.where(d < r[:, None, None], 1.0, -1.0).astype(np.float32)[..., None]


def _board(tiles, rows=2, cols=3):
  """f32[1, rows*8, cols*8, 1] made of `tiles` laid row-major."""
  t = jnp.asarray(tiles[: rows * cols]).reshape(1, rows, cols, 8, 8, 1)
  return latents.from_regions(t)


def test_shapes_and_per_region_coding():
  codec, params = latents.build(CFG, jax.random.key(0))
  tiles = _digits(6)
  x = _board(tiles)
  z = codec.encode(params, x)
  chex.assert_shape(z, (1, 2, 3, 4))
  # each region is coded on its own: the board's latents are the tiles' latents on the grid
  one = codec.encode(params, jnp.asarray(tiles))  # six 8x8 "images" of one region each
  np.testing.assert_allclose(np.asarray(z).reshape(6, 4), np.asarray(one).reshape(6, 4), atol=1e-5)
  y = codec.decode(params, z)
  chex.assert_shape(y, x.shape)
  assert float(jnp.max(jnp.abs(y))) <= 1.0
  np.testing.assert_array_equal(latents.from_regions(latents.to_regions(x, 8)), x)


def test_normalisation_gives_unit_latents_and_decode_inverts_it():
  codec, params = latents.build(CFG, jax.random.key(1))
  tiles = jnp.asarray(_digits(64, seed=3))
  normed = latents.normalise(codec, params["net"], tiles)
  z = np.asarray(codec.encode(normed, tiles)).reshape(64, 4)
  np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-4)
  np.testing.assert_allclose(z.std(axis=0), 1.0, atol=1e-3)
  # the normalisation is undone before decoding: same pixels as the identity-normalised codec
  raw = latents.identity_normalisation(params["net"], 4)
  np.testing.assert_allclose(
    codec.decode(normed, codec.encode(normed, tiles)),
    codec.decode(raw, codec.encode(raw, tiles)),
    atol=1e-5,
  )


def test_a_tiny_codec_learns_and_round_trips():
  cfg = latents.CodecConfig(patch=8, latent_dim=8, width=8)
  codec, params = latents.build(cfg, jax.random.key(2))
  opt = optax.adam(3e-3)
  state = latents.init_state(params, opt)
  step = latents.make_train_step(codec, opt, latent_noise=0.05)
  tiles = jnp.asarray(_digits(32, seed=5))
  losses = []
  for i in range(60):
    state, m = step(state, tiles, jax.random.key(i))
    losses.append(float(m["loss"]))
  assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:3])
  trained = latents.normalise(codec, state.net, tiles)
  # encode(decode(z)) stays close on the codec's own outputs (a fixed point up to a small error)
  z = codec.encode(trained, tiles)
  z2 = codec.encode(trained, codec.decode(trained, z))
  spread = float(jnp.std(z))
  assert float(jnp.sqrt(jnp.mean((z2 - z) ** 2))) < 0.5 * spread


def test_decoder_stage_keeps_the_latent_space():
  """train_encoder=False with decoder_only: the decoder learns, the encoder (and so every latent
  a denoiser was trained on) stays bit for bit."""
  codec, params = latents.build(CFG, jax.random.key(4))
  opt = latents.decoder_only(optax.adam(3e-3))
  state = latents.init_state(params, opt)
  step = latents.make_train_step(codec, opt, latent_noise=0.05, train_encoder=False)
  tiles = jnp.asarray(_digits(32, seed=6))
  first = None
  for i in range(30):
    state, m = step(state, tiles, jax.random.key(i))
    first = float(m["loss"]) if first is None else first
  assert float(m["loss"]) < first
  for name in latents.ENCODER:
    chex.assert_trees_all_equal(state.net[name], params["net"][name])
  assert not np.allclose(state.net["to_pixels"]["kernel"], params["net"]["to_pixels"]["kernel"])
  np.testing.assert_array_equal(
    codec.encode(dict(params, net=state.net), _board(_digits(6))),
    codec.encode(params, _board(_digits(6))),
  )


def test_bad_input_is_a_named_error():
  codec, params = latents.build(CFG, jax.random.key(0))
  with pytest.raises(ValueError, match="region"):
    codec.encode(params, jnp.zeros((1, 12, 16, 1)))  # 12 rows: not whole 8x8 regions
  with pytest.raises(ValueError, match="region"):
    codec.encode(params, jnp.zeros((1, 8, 8, 3)))  # 3 channels, the codec codes 1
  with pytest.raises(ValueError, match="NaN"):
    codec.encode(params, jnp.full((1, 8, 8, 1), jnp.nan))
  with pytest.raises(ValueError, match="latent_dim"):
    codec.decode(params, jnp.zeros((1, 2, 2, 5)))
  with pytest.raises(ValueError, match="NaN"):
    codec.decode(params, jnp.full((1, 2, 2, 4), jnp.nan))
  for bad in (dict(patch=6), dict(latent_dim=0), dict(width=0), dict(dtype="int8")):
    with pytest.raises(ValueError):
      latents.CodecConfig(**bad)
  with pytest.raises(ValueError, match="latent_noise"):
    latents.make_train_step(codec, optax.adam(1e-3), latent_noise=-1.0)


def test_refine_over_latents_decodes_inside_one_compile():
  """refine runs over latents unchanged; the pixel metric decodes inside the compiled loop, with
  codec and evaluator params as arguments: new values never recompile."""
  codec, params = latents.build(CFG, jax.random.key(0))
  grid = regions.make_grid(2, 3, 1)
  apply = chex.assert_max_traces(make_tiny(grid), n=2)
  metric_calls = []

  def pixel_metric(w, x):  # a stand-in evaluator with weights: mean brightness above w
    metric_calls.append(1)
    return {"bright": (jnp.mean(x, axis=(1, 2, 3)) > w).astype(jnp.float32)}

  metric = latents.latent_metric(codec.decode, pixel_metric)
  cfg = ipr.RefineConfig(
    rounds=2,
    initial=sampling.SamplerConfig(steps_per_patch=2),
    ipr=sampling.SamplerConfig(steps_per_patch=2),
  )
  chex.clear_trace_counter()
  for seed in range(3):
    z = codec.encode(params, _board(_digits(6, seed=seed)))
    eligible = jnp.ones((1, 6), bool).at[0, 0].set(False)
    mp = {
      "codec": jax.tree.map(lambda a: a * (1.0 + 0.01 * seed), params),
      "pixels": jnp.float32(-0.5 + 0.1 * seed),
    }
    res = ipr.refine(
      apply,
      {"a": jnp.float32(0.1), "sigma": jnp.linspace(0.1, 1.0, 6)},
      jax.random.key(seed),
      z,
      eligible,
      cfg,
      metric,
      metric_params=mp,
    )
    chex.assert_shape(res.metrics["bright"], (3, 1))
    chex.assert_shape(res.x, (1, 2, 3, 4))
  assert len(metric_calls) == 2  # traced once for round 0 and once in the scan body, one compile


def test_save_and_load_codec_round_trip_and_hash(tmp_path):
  codec, params = latents.build(CFG, jax.random.key(3))
  pretrained.save_codec(str(tmp_path / "m"), params, CFG, {"steps": 7})
  encode, decode, loaded = pretrained.load_codec("m", root=str(tmp_path))
  assert pretrained.manifest("m", str(tmp_path))["codec"]["steps"] == 7
  x = _board(_digits(6))
  np.testing.assert_array_equal(encode(loaded, x), codec.encode(params, x))
  np.testing.assert_array_equal(
    decode(loaded, encode(loaded, x)), codec.decode(params, codec.encode(params, x))
  )
  with open(tmp_path / "m" / pretrained.CODEC_FILE, "ab") as f:
    f.write(b"tampered")
  with pytest.raises(ValueError, match="sha256"):
    pretrained.load_codec("m", root=str(tmp_path))
  with pytest.raises(ValueError, match="no codec"):
    pretrained.codec_config("sudoku_symbolic")  # a model without a codec
