"""Same maths as the field's packages (marker `peers`; `pip install -e ".[peers]"`): our jnp
evaluators against srmbench's on the same boards and images; our UNet, sequential schedule and
reverse step against spatialreasoners'. Skipped, with the reason, when the optional extra is
absent. No code of the peers is copied: they are imported and called."""

import copy

import numpy as np
import pytest

from experiments import peers
from ipr_jax.data import even_pixels, sudoku
from ipr_jax.evaluation import even_pixels as even_eval
from ipr_jax.evaluation import sudoku as sudoku_eval

pytestmark = pytest.mark.peers
torch = pytest.importorskip("torch", reason='the peers extra is absent: pip install -e ".[peers]"')
evaluations = pytest.importorskip(
  "srmbench.evaluations", reason='the peers extra is absent: pip install -e ".[peers]"'
)


def _boards(num: int, seed: int = 0) -> np.ndarray:
  """Held-out solved boards, a third left valid, the rest with 1-6 cells changed."""
  rng = np.random.default_rng(seed)
  boards = sudoku.test_boards()[:num].astype(np.int64).copy()
  for b in boards[num // 3 :]:
    cells = rng.choice(81, int(rng.integers(1, 7)), replace=False)
    b.reshape(81)[cells] = rng.integers(1, 10, len(cells))
  return boards


def test_sudoku_duplicates_and_validity_per_board_equal_srmbench():
  """srmbench's Sudoku metric (the part after its digit classifier, which it downloads from the
  Hugging Face hub and so cannot run offline) against ours, board by board."""
  boards = _boards(60)
  peer = object.__new__(evaluations.MnistSudokuEvaluation)  # no classifier download
  got = peer._get_sudoku_metrics(torch.as_tensor(boards))
  ours = sudoku_eval.duplicate_count(boards.astype(np.int32))
  np.testing.assert_array_equal(got["duplicate_count"].numpy(), np.asarray(ours))
  np.testing.assert_array_equal(
    got["is_valid_sudoku"].numpy(), np.asarray(sudoku_eval.is_valid(boards.astype(np.int32)))
  )
  assert 0 < got["is_valid_sudoku"].sum() < len(boards)  # both verdicts occur


def test_even_pixels_per_image_equal_srmbench():
  """srmbench's Even Pixels evaluator on one image at a time (it returns batch means) against
  our per-image jnp metrics: the training images (even by construction) and recoloured ones."""
  rng = np.random.default_rng(1)
  images = [even_pixels.item(i, "test").copy() for i in range(12)]
  for img in images[6:]:  # recolour a random block to the first pixel's colour: uneven
    r, c = rng.integers(0, 24, 2)
    img[r : r + 8, c : c + 8] = img[0, 0]
  x = np.stack([im.astype(np.float32) / 127.5 - 1.0 for im in images])  # [-1, 1], HWC
  peer = evaluations.EvenPixelsEvaluation()
  ours = even_eval.metrics(x)
  for i in range(len(x)):
    got = peer.evaluate(torch.as_tensor(x[i : i + 1]).permute(0, 3, 1, 2))
    for name in ("color_imbalance_count", "is_color_count_even"):
      assert float(got[name]) == float(ours[name][i]), (i, name)
    for name in ("saturation_std", "value_std"):
      np.testing.assert_allclose(float(got[name]), float(ours[name][i]), rtol=1e-4, atol=1e-6)
  assert 0 < float(np.sum(ours["is_color_count_even"])) < len(x)


def test_counting_polygons_numbers_rule_equals_srmbench():
  """srmbench's Counting Polygons evaluator needs its ResNet classifier from the Hugging Face hub
  (BartekPog/counting-polygons-classifier), so it cannot run offline; its rule after the
  classifier can: "numbers match objects" = the numbers head's pair equals (polygons, vertices)
  in either order. Ours on every combination of head readings of a clean image against it."""
  from ipr_jax.data import counting_polygons as cp
  from ipr_jax.evaluation import counting_polygons as cp_eval

  polygons, vertices, numbers = np.meshgrid(
    np.arange(1, cp.MAX_POLYGONS + 1), np.array(cp.VERTICES), np.arange(len(cp.NUMBER_PAIRS))
  )
  polygons, vertices, numbers = (
    a.reshape(-1).astype(np.int32) for a in (polygons, vertices, numbers)
  )
  pred = dict(
    num_polygons=polygons,
    num_vertices=vertices,
    numbers=numbers,
    is_uniform=np.ones_like(numbers),
    is_clean=np.ones_like(numbers),
  )
  ours = np.asarray(cp_eval.metrics_of(pred)["numbers_match_objects"])
  pairs = torch.as_tensor(np.array(cp.NUMBER_PAIRS)[numbers])
  got = evaluations.CountingObjectsEvaluation._are_ambiguous_numbers_consistent(
    pairs, torch.as_tensor(polygons), torch.as_tensor(vertices)
  )
  np.testing.assert_array_equal(ours, got.numpy().astype(np.float32))
  assert 0 < ours.sum() < len(ours)


@pytest.mark.parametrize("variance", ["fixed_small", "fixed_large", "learned_range"])
@pytest.mark.parametrize("alpha,temperature", [(0.5, 1.0), (1.0, 0.7)])
def test_reverse_step_equals_spatialreasoners(variance, alpha, temperature):
  """One reverse step of the rectified-flow kernel: spatialreasoners' RectifiedFlow
  (velocity parameterisation "ut") against `flow.reverse_kernel` / `reverse_step` with the same
  noise, per element, t > s and the edges s = 0 and t = s excluded by the peer's own masks."""
  import jax
  import jax.numpy as jnp

  from ipr_jax import flow

  flows = pytest.importorskip("spatialreasoners.denoising_model.flow")
  rng = np.random.default_rng(3)
  shape = (4, 6, 6, 3)
  z, u, noise = (rng.normal(size=shape).astype(np.float32) for _ in range(3))
  v = rng.uniform(0.05, 0.95, shape).astype(np.float32)
  t = rng.uniform(0.2, 0.95, shape).astype(np.float32)
  s = (t * rng.uniform(0.3, 0.9, shape)).astype(np.float32)
  peer = flows.RectifiedFlow(flows.RectifiedFlowCfg(variance=variance), "ut")
  as_t = lambda a: torch.as_tensor(a.copy())
  got = peer.conditional_p_ut(
    mean_theta=as_t(u),
    z_t=as_t(z),
    t=as_t(t),
    t_star=as_t(s),
    alpha=alpha,
    temperature=temperature,
    v_theta=as_t(v),
  )
  mean, std = flow.reverse_kernel(
    z, t, s, u, v, alpha=alpha, temperature=temperature, variance=variance
  )
  np.testing.assert_allclose(np.asarray(mean), got.mean.numpy(), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(np.asarray(std), got.var.sqrt().numpy(), rtol=1e-5, atol=1e-6)
  step = flow.reverse_step(
    jax.random.key(0),
    z,
    t,
    s,
    u,
    v,
    alpha=alpha,
    temperature=temperature,
    variance=variance,
    noise=jnp.asarray(noise),
  )
  expected = got.mean + got.var.sqrt() * as_t(noise)
  np.testing.assert_allclose(np.asarray(step), expected.numpy(), rtol=1e-5, atol=1e-5)


def _our_schedule(known, sigma, steps_per_patch, overlap):
  """The noise levels our sampler hands the denoiser at every step, f32[M, B, R], recorded by a
  denoiser whose per-region sigma is fixed (so both samplers pick regions in the same order)."""
  import jax
  import jax.numpy as jnp

  from ipr_jax import sampling
  from ipr_jax.denoisers import DenoiserOutput

  seen = []

  def apply(params, z_t, t_region, key=None):
    jax.debug.callback(lambda t: seen.append(np.asarray(t)), t_region, ordered=True)
    return DenoiserOutput(
      jnp.zeros_like(z_t), jnp.full_like(z_t, 0.5), params["sigma"] + 0 * t_region
    )

  b, r = known.shape
  z = jnp.zeros((b, 3, r // 3, 1))
  cfg = sampling.SamplerConfig(steps_per_patch=steps_per_patch, overlap=overlap)
  res = sampling.sample(
    apply, {"sigma": jnp.asarray(sigma)}, jax.random.key(0), z, jnp.asarray(known), z, cfg
  )
  jax.effects_barrier()
  return np.stack(seen), res


def _known_and_sigma(num_unknown, seed, batch=3, regions=12):
  rng = np.random.default_rng(seed)
  known = np.ones((batch, regions), bool)
  for row in known:
    row[rng.choice(regions, num_unknown, replace=False)] = False
  return known, rng.uniform(0.1, 1.0, (batch, regions)).astype(np.float32)


@pytest.mark.parametrize(
  "num_unknown,steps_per_patch,overlap",
  [(9, 3, 0.0), (12, 3, 0.0), (6, 4, 0.5), (8, 10, 0.8), (5, 2, 0.5), (11, 1, 0.0)],
)
def test_sequential_schedule_equals_spatialreasoners(num_unknown, steps_per_patch, overlap):
  """The noise level of every region at every step, ours against the peer's batched sequential
  schedule for the same settings: the peer's max_steps set to our M = ceil(p_s + (n-1)(1-ov) p_s)
  (it takes a total step count; we take steps per region), the same lowest-sigma-first order,
  a batch whose given regions sit in different places. Regions finish at different steps
  (overlap) and every one ends at 0. Settings where the peer's float32 plan is exact."""
  from ipr_jax import schedules

  known, sigma = _known_and_sigma(num_unknown, seed=num_unknown)
  plan = schedules.sequential_plan(num_unknown, steps_per_patch, overlap)
  ours, res = _our_schedule(known, sigma, steps_per_patch, overlap)
  driven = peers.drive_schedule(known, sigma, plan.total_steps, overlap)
  peer, sched = driven.rows, driven.schedule
  assert int(sched.block_lengths[0]) == plan.proto_len  # the peer's plan is the exact one here
  assert ours.shape[0] == int(res.nfe) == plan.total_steps
  assert peer.shape[0] == plan.total_steps + 1  # the peer's final row: every region at 0
  np.testing.assert_allclose(ours, peer[:-1], rtol=0, atol=1e-6)
  assert not peer[-1].any()
  partial = ((ours > 0) & (ours < 1)).any()  # regions part-way through their prototype
  assert partial == (steps_per_patch > 1)


# Settings the reference configs use: (steps per region, overlap); n = 1..81 unknown regions.
PEER_PLAN_SETTINGS = [(3, 0.0), (10, 0.8), (4, 0.5), (2, 0.5), (1, 0.0)]


@pytest.mark.parametrize("steps_per_patch,overlap", PEER_PLAN_SETTINGS)
def test_sequential_plan_differs_from_the_peer_only_by_its_float32_rounding(
  steps_per_patch, overlap
):
  """For every n the peer's plan (prototype length, block starts) equals our exact-integer plan,
  except where its float32 arithmetic (method 3.1, reference bug 7) rounds across an integer:
  there the peer's ideal block length is within float32 precision of the exact rational one and
  its ceil or floor lands one off, or it refuses the plan (duplicate block starts)."""
  from fractions import Fraction

  from ipr_jax import schedules

  off = []
  for n in range(1, 82):
    plan = schedules.sequential_plan(n, steps_per_patch, overlap)
    exact = Fraction(plan.total_steps) / ((n - 1) * (1 - Fraction(str(overlap))) + 1)
    try:
      sched = peers.sequential_schedule(np.arange(81)[None] >= n, plan.total_steps, overlap)
    except AssertionError:  # "Block starts must be unique": a float32 floor merged two starts
      off.append(n)
      continue
    same = int(sched.block_lengths[0]) == plan.proto_len and tuple(
      int(v) for v in sched.block_starts[0, :n]
    ) == tuple(plan.block_starts)
    if not same:
      off.append(n)
      peer_len = float(sched._get_inference_lengths(sched.num_inference_blocks)[0])
      assert abs(peer_len - float(exact)) <= 4e-7 * float(exact), (n, peer_len, exact)
      boundary = exact.denominator == 1 or any(
        (k * exact * (1 - Fraction(str(overlap)))).denominator == 1 for k in range(1, n)
      )
      assert boundary, n  # the exact value sits on an integer that float32 rounding crossed
  assert len(off) < 30, off  # the rest (most n) are identical


def test_peer_leaves_an_early_finishing_item_partly_noisy():
  """A divergence found, not a shared result: the peer shares one max_steps across a batch, so
  with overlap an item with fewer unknown regions is declared finished at its block start b_n
  before its last region reaches 0, and the peer returns it with that region still at t > 0.
  Our sampler gives every item its own plan and ends all its regions at 0."""
  known = np.ones((2, 12), bool)
  known[0, :8] = False  # 8 unknown regions
  known[1, 4:8] = False  # 4 unknown regions: finishes early
  sigma = np.random.default_rng(0).uniform(0.1, 1.0, (2, 12)).astype(np.float32)
  from ipr_jax import schedules

  plan = schedules.sequential_plan(8, 4, 0.5)
  driven = peers.drive_schedule(known, sigma, plan.total_steps, 0.5)
  peer, sched = driven.rows, driven.schedule
  assert float(sched.finishing_step[1]) < plan.total_steps
  assert peer[-1, 0].max() == 0 and peer[-1, 1].max() > 0
  ours, res = _our_schedule(known, sigma, 4, 0.5)
  assert ours.shape[0] == plan.total_steps  # the batch runs its longest plan
  short = schedules.sequential_plan(4, 4, 0.5).total_steps
  assert not ours[short:, 1].any()  # the short item's regions are all at 0 from its own M on


# Two UNet configs: the importer fixture's (36x36, 4x4 regions, one channel, attention at the
# deepest level) and one with three channels, 8x8 regions, widths that change (shortcut convs)
# and two heads.
UNET_CONFIGS = {
  "fixture": dict(
    height=36,
    width=36,
    channels=1,
    patch=4,
    widths=(32, 32, 32, 32),
    attention=(False, False, False, True),
    num_blocks=2,
    time_dim=16,
    head_channels=16,
  ),
  "rgb": dict(
    height=24,
    width=24,
    channels=3,
    patch=8,
    widths=(32, 64, 64),
    attention=(False, True, True),
    num_blocks=1,
    time_dim=32,
    head_channels=32,
  ),
}


def _random_like(shape, rng, kind):
  """Full-mantissa random weights with every layer live (no zero-initialised output conv)."""
  if kind == "weight" and len(shape) > 1:
    return (rng.normal(size=shape) / np.sqrt(np.prod(shape[1:]))).astype(np.float32)
  if kind == "weight":  # GroupNorm scale
    return (1 + 0.1 * rng.normal(size=shape)).astype(np.float32)
  return (0.1 * rng.normal(size=shape)).astype(np.float32)


def _inputs(c: dict, seed: int, batch: int = 3):
  """z_t and per-region t (exact 0s and 1s among them), as the sampler hands them over."""
  rng = np.random.default_rng(seed)
  r = (c["height"] // c["patch"]) * (c["width"] // c["patch"])
  t = rng.uniform(0, 1, (batch, r)).astype(np.float32)
  t[:, ::5], t[:, 1::7] = 0.0, 1.0
  z = rng.normal(size=(batch, c["height"], c["width"], c["channels"])).astype(np.float32)
  return z, t


def _peer_forward(model, z, t):
  """The peer DenoisingModel's forward for one time step (its sampler's call): velocity and raw
  v f32[B, H, W, C], per-region sigma f32[B, R]."""
  mapper = model.variable_mapper
  dtype = next(model.parameters()).dtype
  with torch.no_grad():
    z_vars = mapper.unstructured_tensor_to_variables(torch.as_tensor(z).permute(0, 3, 1, 2))
    out = model(z_vars[:, None].to(dtype), torch.as_tensor(t)[:, None].to(dtype), sample=True)
  image = lambda v: mapper.variables_tensor_to_unstructured(v[:, 0]).permute(0, 2, 3, 1).numpy()
  return image(out.mean_theta), image(out.variance_theta), out.sigma_theta[:, 0].numpy()


@pytest.mark.parametrize("name,direction", [("fixture", "ours_to_peer"), ("rgb", "peer_to_ours")])
def test_unet_forward_equals_spatialreasoners(name, direction):
  """The SRM UNet, ours against the peer's, same weights and inputs, float32 on CPU: velocity,
  v and per-region sigma within 1e-5. Weights go both ways: ours exported with
  `srm_unet.to_state_dict` and loaded into the peer (strict), and the peer's imported with
  `srm_unet.to_params`. The peer's v_theta is its raw output channel (its flow takes it as the
  interpolation weight as it is); the reference's Wrapper, whose checkpoints we import, maps it
  to (raw + 1) / 2, as we do: compared as such."""
  import jax
  import jax.numpy as jnp

  from ipr_jax import denoisers
  from ipr_jax.importers import srm_unet

  c = UNET_CONFIGS[name]
  cfg = denoisers.UNetConfig(**c)
  model = peers.denoising_model(cfg)
  rng = np.random.default_rng(7)
  if direction == "ours_to_peer":
    apply, params = denoisers.build(cfg, jax.random.key(0))
    leaves, treedef = jax.tree.flatten(params)
    names = [p.split("/")[-1] for p in srm_unet.weights.leaf_paths(params)]
    leaves = [
      jnp.asarray(_random_like(x.shape, rng, "weight" if n in ("kernel", "scale") else "bias"))
      for x, n in zip(leaves, names)
    ]
    params = jax.tree.unflatten(treedef, leaves)
    peers.load_params(model, params, cfg)  # strict: every tensor, nothing else
  else:
    with torch.no_grad():
      for key, p in model.denoiser.named_parameters():
        kind = "weight" if key.endswith("weight") else "bias"
        p.copy_(torch.as_tensor(_random_like(tuple(p.shape), rng, kind)))
    state = peers.state_dict_for_importer(model.denoiser, cfg)
    apply, params = srm_unet.to_params(state, cfg, ema=True, source="peer")
  num = sum(p.numel() for p in model.parameters())
  assert sum(x.size for x in jax.tree.leaves(params)) == num
  double = copy.deepcopy(model).double()
  for seed in (0, 1):
    z, t = _inputs(c, seed)
    out = jax.jit(apply)(params, jnp.asarray(z), jnp.asarray(t))
    ours = (out.velocity, out.v_interp, out.sigma_region)
    peer = _peer_forward(model, z, t)
    exact = _peer_forward(double, z, t)
    assert np.abs(peer[0]).max() > 0.1 and np.std(peer[2]) > 1e-3  # every head is live
    for name, a, b, b64 in zip(("velocity", "v", "sigma"), ours, peer, exact):
      if name == "v":  # the peer's raw channel -> the reference's interpolation weight
        b, b64 = (b + 1) / 2, (b64 + 1) / 2
      # 1e-5, or the peer's own float32 round-off (its float32 forward against its float64
      # one) where that is larger: on the deep fixture config, velocity reaches 2.5e-5 there
      tol = max(1e-5, float(np.abs(b - b64).max()))
      assert np.abs(np.asarray(a) - b).max() <= tol, (name, np.abs(np.asarray(a) - b).max(), tol)
      assert np.abs(np.asarray(a) - b64).max() <= 2 * tol, name
