import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ipr_jax import denoisers, graphs

TINY_T = dict(dim=16, depth=1, heads=2)
TINY_U = dict(widths=(8, 16), attention=(False, True), time_dim=16, head_channels=8, groups=4)


def _configs():
  row, col, box = graphs.sudoku_position_ids()
  yield denoisers.TransformerConfig(
    9,
    9,
    9,
    1,
    position_ids=(tuple(row), tuple(col), tuple(box)),
    attention_graph=tuple(map(tuple, graphs.sudoku_peers())),
    **TINY_T,
  )
  yield denoisers.TransformerConfig(8, 12, 3, 4, **TINY_T)
  yield denoisers.TransformerConfig(8, 12, 3, 4, skip=True, **TINY_T)  # 16 < 48 values: skip
  yield denoisers.TransformerConfig(8, 12, 3, 4, pixel_head=8, **TINY_T)
  yield denoisers.UNetConfig(16, 16, 3, 4, **TINY_U)
  yield denoisers.UNetConfig(18, 18, 1, 2, **TINY_U)  # odd sizes: 18 -> 9 (pad 1, stride 2)


@pytest.mark.parametrize(
  "cfg",
  list(_configs()),
  ids=lambda c: (
    f"{type(c).__name__}-{c.height}-{c.patch}-{getattr(c, 'skip', '')}"
    f"-{getattr(c, 'pixel_head', '')}"
  ),
)
def test_shapes_and_zero_init(cfg):
  apply, params = denoisers.build(cfg, jax.random.key(0))
  b, r = 3, (cfg.height // cfg.patch) * (cfg.width // cfg.patch)
  z = jax.random.normal(jax.random.key(1), (b, cfg.height, cfg.width, cfg.channels))
  t = jax.random.uniform(jax.random.key(2), (b, r))
  out = jax.jit(apply)(params, z, t)
  chex.assert_shape([out.velocity, out.v_interp], (b, cfg.height, cfg.width, cfg.channels))
  chex.assert_shape(out.sigma_region, (b, r))
  np.testing.assert_array_equal(out.velocity, 0.0)
  np.testing.assert_allclose(out.v_interp, 0.5, atol=1e-7)
  np.testing.assert_allclose(out.sigma_region, 1.0, atol=1e-7)


@pytest.mark.parametrize(
  "cfg",
  [list(_configs())[i] for i in (1, 2, 3, 4)],
  ids=["transformer", "transformer-skip", "transformer-pixel-head", "unet"],
)
def test_traces_once_for_new_inputs(cfg):
  chex.clear_trace_counter()  # counters are keyed by code object, shared by all `apply`s
  apply, params = denoisers.build(cfg, jax.random.key(0))
  f = jax.jit(chex.assert_max_traces(apply, n=1))
  r = (cfg.height // cfg.patch) * (cfg.width // cfg.patch)
  for i in range(3):
    z = jax.random.normal(jax.random.key(i), (2, cfg.height, cfg.width, cfg.channels))
    t = jax.random.uniform(jax.random.key(10 + i), (2, r))
    f(params, z, t)


def test_outputs_depend_on_time_and_attention_graph():
  """After perturbing the zero-initialised heads, region i sees only its graph neighbours."""
  graph = np.eye(4, dtype=bool)
  graph[0, 1] = True
  cfg = denoisers.TransformerConfig(2, 2, 2, 1, attention_graph=tuple(map(tuple, graph)), **TINY_T)
  apply, params = denoisers.build(cfg, jax.random.key(0))
  params = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(jax.random.key(5), p.shape), params)
  z = jax.random.normal(jax.random.key(1), (1, 2, 2, 2))
  t = jnp.full((1, 4), 0.5)
  base = apply(params, z, t).velocity.reshape(4, 2)
  z2 = z.at[0, 0, 1].add(1.0)  # region 1 changes
  moved = jnp.abs(apply(params, z2, t).velocity.reshape(4, 2) - base).sum(-1)
  assert moved[0] > 1e-4 and moved[1] > 1e-4  # region 0 attends to 1; 1 is itself
  assert moved[2] == 0 and moved[3] == 0
  t2 = t.at[0, 3].set(0.9)
  moved_t = jnp.abs(apply(params, z, t2).velocity.reshape(4, 2) - base).sum(-1)
  assert moved_t[3] > 1e-4 and moved_t[2] == 0


def _perturbed(cfg):
  """(apply, params) of `cfg` with every weight moved off its init (zero heads included)."""
  apply, params = denoisers.build(cfg, jax.random.key(0))
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(5), len(leaves))
  return apply, jax.tree.unflatten(
    treedef, [p + 0.3 * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)]
  )


def _region0_velocities(skip):
  """Region 0's velocity (4x4x3 = 48 values) for 96 random z_t, from a 16-wide transformer with
  perturbed weights: f32[96, 48]."""
  apply, params = _perturbed(denoisers.TransformerConfig(8, 8, 3, 4, skip=skip, **TINY_T))
  z = jax.random.normal(jax.random.key(1), (96, 8, 8, 3))
  v = jax.jit(apply)(params, z, jnp.full((96, 4), 0.5)).velocity
  return params, apply, z, np.asarray(v[:, :4, :4, :].reshape(96, 48))


def test_skip_lets_a_narrow_transformer_span_its_whole_region():
  """Without the skip a region's velocity is affine in a 16-dim token: centred, rank <= 16 of its
  48 values, so noise outside that span can never be removed. The z_t skip spans all 48."""

  def rank(m):
    s = np.linalg.svd(m - m.mean(0), compute_uv=False)
    return int((s > 1e-4 * s[0]).sum())

  assert rank(_region0_velocities(False)[3]) <= 16
  assert rank(_region0_velocities(True)[3]) == 48


def test_skip_adds_gain_times_z_per_channel():
  """The skip's gain is per region and per channel: with its kernel zeroed and bias g, velocity
  moves by exactly g[c] * z_t[..., c] against bias 0."""
  params, apply, z, _ = _region0_velocities(True)
  gain = jnp.asarray([0.5, -1.0, 2.0])

  def with_bias(b):
    p = jax.tree.map(lambda x: x, params)
    p["skip"]["kernel"] = jnp.zeros_like(p["skip"]["kernel"])
    p["skip"]["bias"] = b
    return apply(p, z[:4], jnp.full((4, 4), 0.3)).velocity

  moved = with_bias(gain) - with_bias(jnp.zeros(3))
  np.testing.assert_allclose(moved, gain * z[:4], rtol=1e-5, atol=1e-5)


def test_pixel_head_is_one_function_of_a_pixel_and_its_context():
  """The per-pixel MLP has one set of weights for every pixel: two pixels of a region with the
  same z_t get the same output when the place embedding is zero, different ones when it is not
  (its zero output layer at init is in test_shapes_and_zero_init)."""
  apply, params = _perturbed(denoisers.TransformerConfig(8, 8, 3, 4, pixel_head=8, **TINY_T))
  z = jax.random.normal(jax.random.key(1), (1, 8, 8, 3))
  z = z.at[0, 1, 2].set(z[0, 0, 0])  # two pixels of region 0 with the same values
  t = jnp.full((1, 4), 0.4)

  def head(p, zz):  # the pixel head's share of the velocity
    off = jax.tree.map(lambda x: x, p)
    off["pixel_out"] = jax.tree.map(jnp.zeros_like, p["pixel_out"])
    return np.asarray(apply(p, zz, t).velocity - apply(off, zz, t).velocity)[0]

  flat = jax.tree.map(lambda x: x, params)
  flat["pixel_place"] = jnp.zeros_like(params["pixel_place"])
  v = head(flat, z)
  assert np.abs(v[0, 0]).max() > 1e-3
  np.testing.assert_allclose(v[0, 0], v[1, 2], rtol=1e-5, atol=1e-6)
  placed = head(params, z)
  assert np.abs(placed[0, 0] - placed[1, 2]).max() > 1e-4
  with pytest.raises(ValueError, match="pixel_head must be >= 0"):
    denoisers.build(
      denoisers.TransformerConfig(8, 8, 3, 4, pixel_head=-1, **TINY_T), jax.random.key(0)
    )


def test_bad_input():
  cfg = denoisers.TransformerConfig(8, 8, 1, 4, **TINY_T)
  apply, params = denoisers.build(cfg, jax.random.key(0))
  with pytest.raises(ValueError, match="t_region"):
    apply(params, jnp.zeros((2, 8, 8, 1)), jnp.zeros((2, 5)))
  with pytest.raises(ValueError, match="patch=3"):
    denoisers.build(denoisers.TransformerConfig(8, 8, 1, 3, **TINY_T), jax.random.key(0))
  with pytest.raises(ValueError, match="patch=3"):
    denoisers.build(denoisers.UNetConfig(8, 8, 1, 3, **TINY_U), jax.random.key(0))
  with pytest.raises(ValueError, match="attention_graph"):
    denoisers.build(
      denoisers.TransformerConfig(8, 8, 1, 4, attention_graph=((True,),), **TINY_T),
      jax.random.key(0),
    )


@pytest.mark.parametrize(
  "hw,c,p,widths,att",
  [
    (252, 1, 28, (128, 128, 256, 256, 512, 512), (False,) * 4 + (True, True)),  # MNIST Sudoku
    (32, 3, 4, (64, 128, 128, 256), (False, False, True, True)),  # Even Pixels
  ],
)
def test_paper_unet_sizes_are_expressible(hw, c, p, widths, att):
  """Spec 6.2 sizes: shapes only (jax.eval_shape), no compute."""
  from flax import nnx

  cfg = denoisers.UNetConfig(hw, hw, c, p, widths=widths, attention=att)
  model = nnx.eval_shape(lambda: denoisers.UNet(cfg, rngs=nnx.Rngs(0)))
  graphdef, state = nnx.split(model)
  n = sum(np.prod(x.shape) for x in jax.tree.leaves(state))
  assert n > 10_000_000 if hw == 252 else n > 1_000_000
  out = jax.eval_shape(
    lambda st, z, t: nnx.merge(graphdef, st)(z, t),
    state,
    jax.ShapeDtypeStruct((2, hw, hw, c), jnp.float32),
    jax.ShapeDtypeStruct((2, (hw // p) ** 2), jnp.float32),
  )
  assert out.velocity.shape == (2, hw, hw, c) and out.sigma_region.shape == (2, (hw // p) ** 2)
