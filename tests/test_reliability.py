"""Bad inputs that used to slip through: legacy keys, NaN/Inf givens, integer or mis-channelled
images, altered shipped-model files. Each is accepted correctly or a named ValueError before any
compile, never an obscure trace error or silent NaNs."""

import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ipr_jax import denoisers, pretrained
from ipr_jax import refine as ipr
from ipr_jax import regions, rng, sampling, time_sampling, training
from tests.tiny import make_tiny

GRID = regions.make_grid(6, 6, 2)
R, SHAPE = 9, (6, 6, 2)
APPLY = make_tiny(GRID)
PARAMS = {"a": jnp.float32(0.7), "sigma": jnp.linspace(0.1, 2.0, R)}
CFG = ipr.RefineConfig(
  rounds=2, initial=sampling.SamplerConfig(2, 0.0), ipr=sampling.SamplerConfig(3, 0.5)
)


def _inputs(b=3):
  x = jax.random.normal(jax.random.key(0), (b, *SHAPE))
  return x, jnp.ones((b, R), bool).at[0, :4].set(False).at[1, :1].set(False)


def test_legacy_prng_keys_are_accepted_everywhere():
  x, eligible = _inputs()
  legacy = jax.random.PRNGKey(3)
  typed = jax.random.wrap_key_data(legacy)
  a = ipr.refine(APPLY, PARAMS, legacy, x, eligible, CFG)
  b = ipr.refine(APPLY, PARAMS, typed, x, eligible, CFG)
  np.testing.assert_array_equal(a.x, b.x)
  z = jax.random.normal(jax.random.key(1), x.shape)
  s1 = sampling.sample(APPLY, PARAMS, legacy, z, ~eligible, x)
  s2 = sampling.sample(APPLY, PARAMS, typed, z, ~eligible, x)
  np.testing.assert_array_equal(s1.x, s2.x)
  cfg = denoisers.TransformerConfig(4, 4, 2, 1, dim=8, depth=1, heads=2, mlp_ratio=2)
  apply, params = denoisers.build(cfg, jax.random.key(0))
  opt = training.make_optimizer(training.OptimConfig(learning_rate=1e-3))
  step = training.make_train_step(
    apply, opt, regions.make_grid(4, 4, 1), time_sampling.TimeSamplerConfig("independent")
  )
  batch = {"x": jnp.ones((2, 4, 4, 2))}
  s_legacy, _ = step(training.init_state(params, opt), batch, jax.random.PRNGKey(5))
  s_typed, _ = step(
    training.init_state(params, opt), batch, jax.random.wrap_key_data(jax.random.PRNGKey(5))
  )
  assert all(jax.tree.leaves(jax.tree.map(jnp.array_equal, s_legacy.params, s_typed.params)))
  for bad in ("seed", np.zeros(3, np.uint32), jax.random.split(typed, 2), np.zeros(2, np.int64)):
    with pytest.raises(ValueError, match="key must be a (jax.random.key|single key)"):
      rng.as_key(bad)
  with pytest.raises(ValueError, match="key must be"):
    ipr.refine(APPLY, PARAMS, 0, x, eligible, CFG)


def test_non_finite_givens_and_noise_are_named():
  x, eligible = _inputs()
  given = np.array(x)
  given[0, 0, 0, 1] = np.nan  # region 0 of sample 0 is a given
  with pytest.raises(
    ValueError, match=r"x holds NaN or Inf \(in regions it must hold fixed\) in samples \[0\]"
  ):
    ipr.refine(APPLY, PARAMS, jax.random.key(0), given, eligible, CFG)
  free = np.array(x)
  free[2, 0, 0, 0] = np.inf  # sample 2 has no givens: its x is never read, so this is fine
  out = ipr.refine(APPLY, PARAMS, jax.random.key(0), free, eligible, CFG)
  assert np.isfinite(out.x).all()
  with pytest.raises(
    ValueError, match=r"x holds NaN or Inf in samples \[2\]"
  ):  # correction reads all
    ipr.refine(
      APPLY,
      PARAMS,
      jax.random.key(0),
      free,
      eligible,
      ipr.RefineConfig(rounds=1, mode="correction"),
    )
  z = np.array(jax.random.normal(jax.random.key(1), x.shape))
  z[1, 3, 3, 0] = np.nan
  with pytest.raises(ValueError, match=r"z_init holds NaN or Inf in samples \[1\]"):
    sampling.sample(APPLY, PARAMS, jax.random.key(0), z, ~eligible, x)
  with pytest.raises(ValueError, match=r"known_values holds NaN.*samples \[0\]"):
    sampling.sample(APPLY, PARAMS, jax.random.key(0), np.asarray(x), ~eligible, given)


def test_integer_or_wrong_channel_images_are_named():
  x, eligible = _inputs()
  with pytest.raises(
    ValueError, match="x must be a float array f32\\[B, H, W, C\\], got dtype int32"
  ):
    ipr.refine(
      APPLY,
      PARAMS,
      jax.random.key(0),
      np.asarray(x).astype(np.int32),
      eligible,
      ipr.RefineConfig(rounds=1, mode="correction"),
    )
  with pytest.raises(ValueError, match="z_init must be a float array"):
    sampling.sample(APPLY, PARAMS, jax.random.key(0), np.zeros(x.shape, np.int32), ~eligible, x)
  cfg = denoisers.TransformerConfig(6, 6, 2, 2, dim=8, depth=1, heads=2, mlp_ratio=2)
  apply, params = denoisers.build(cfg, jax.random.key(0))
  with pytest.raises(
    ValueError, match=r"image must be \[B, H, W, C\] = \[B, 6, 6, 2\], got \(3, 6, 6, 3\)"
  ):
    ipr.refine(apply, params, jax.random.key(0), jnp.zeros((3, 6, 6, 3)), eligible, CFG)
  unet = denoisers.UNetConfig(
    8, 8, 3, 2, widths=(8,), attention=(False,), groups=4, time_dim=8, head_channels=8
  )
  apply, params = denoisers.build(unet, jax.random.key(0))
  with pytest.raises(ValueError, match=r"= \[B, 8, 8, 3\], got \(1, 8, 8, 1\)"):
    apply(params, jnp.zeros((1, 8, 8, 1)), jnp.zeros((1, 16)))


def _copy_asset(tmp_path, name="sudoku_symbolic_cpu"):
  root = str(tmp_path)
  shutil.copytree(os.path.join(pretrained.ASSETS, name), os.path.join(root, name))
  return root, os.path.join(root, name, "params.npz")


def _rewrite(root, name, path, flat):
  """Write altered arrays and update the manifest's hash, as a careless edit would."""
  np.savez(path, **flat)
  _rewrite_hash_only(root, name, path)


@pytest.mark.skipif("sudoku_symbolic_cpu" not in pretrained.available(), reason="asset absent")
def test_pretrained_load_validates_every_array(tmp_path):
  name = "sudoku_symbolic_cpu"
  root, path = _copy_asset(tmp_path)
  flat = dict(np.load(path))
  kernel = next(k for k, v in flat.items() if v.ndim == 2 and v.shape[0] != v.shape[1])
  _rewrite(root, name, path, {**flat, kernel: flat[kernel].T})
  with pytest.raises(
    ValueError, match=f"params.npz: {kernel} is float32\\[{flat[kernel].shape[1]}"
  ):
    pretrained.load(name, root)
  bad = flat[kernel].copy()
  bad[0, 0] = np.nan
  _rewrite(root, name, path, {**flat, kernel: bad})
  with pytest.raises(ValueError, match=f"{kernel} holds NaN"):
    pretrained.load(name, root)
  _rewrite(root, name, path, {**flat, kernel: flat[kernel].astype(np.float16)})
  with pytest.raises(ValueError, match="is float16"):
    pretrained.load(name, root)
  _rewrite(root, name, path, {k: v for k, v in flat.items() if k != kernel})
  with pytest.raises(ValueError, match="does not fit the model: missing"):
    pretrained.load(name, root)
  np.savez(path, **flat)
  data = open(path, "rb").read()
  open(path, "wb").write(data[: len(data) // 2])
  _rewrite_hash_only(root, name, path)
  with pytest.raises(ValueError, match=f"{path}: unreadable"):
    pretrained.load(name, root)


def _rewrite_hash_only(root, name, path):
  mpath = os.path.join(root, name, "manifest.json")
  man = json.load(open(mpath))
  man["sha256"] = pretrained.sha256(path)
  json.dump(man, open(mpath, "w"))


@pytest.mark.parametrize(
  "bench", ["sudoku_symbolic", "mnist_sudoku", "even_pixels", "counting_polygons"]
)
@pytest.mark.parametrize("variant", ["smoke", "cpu", "paper"])
def test_compute_matched_baseline_within_ten_percent(bench, variant):
  """For every benchmark and variant, at its configured budget (and at 15 and 30 rounds), the
  matched single pass costs IPR's NFE within 10%: round 0 plus each round's pass over
  m = max(1, floor(|E| ratio)) regions. (Single rounds cannot be matched this closely: with 81
  blocks one more step per cell costs 81 NFE.)"""
  import importlib
  from experiments import evaluate, translate
  from ipr_jax import schedules

  config = importlib.import_module(f"experiments.configs.{bench}").get_config(variant)
  unknown = {
    "sudoku_symbolic": 81,
    "mnist_sudoku": 81,
    "even_pixels": 64,
    "counting_polygons": 256,
  }[bench]
  cfg = translate.translate(config).refine
  first = schedules.sequential_plan(unknown, cfg.initial.steps_per_patch, cfg.initial.overlap)
  m = ipr.num_resampled(unknown, cfg.resampling_ratio)
  per_round = schedules.sequential_plan(m, cfg.ipr.steps_per_patch, cfg.ipr.overlap).total_steps
  for rounds in sorted({config.refine.rounds, 15, 30}):
    total = first.total_steps + rounds * per_round
    steps = evaluate.matched_steps(cfg.initial, total, unknown)
    cost = schedules.sequential_plan(unknown, steps, cfg.initial.overlap).total_steps
    assert abs(cost - total) <= 0.1 * total, (rounds, steps, cost, total)


def test_manifest_recommended_settings_are_checked_when_loaded(tmp_path):
  """A manifest's recommended settings round-trip to the RefineConfig they came from, and a
  manifest whose settings the sampler would reject fails at load, naming the model and entry."""
  cfg = ipr.RefineConfig(
    rounds=30,
    selector="uncertainty",
    final_ratio=0.1,
    initial=sampling.SamplerConfig(steps_per_patch=30, overlap=0.9),
    ipr=sampling.SamplerConfig(steps_per_patch=7, overlap=0.5),
  )
  model = denoisers.TransformerConfig(
    height=4, width=4, channels=1, patch=2, dim=8, depth=1, heads=2
  )
  _, params = denoisers.build(model, jax.random.key(0))
  settings = json.loads(json.dumps(pretrained.settings_dict(cfg)))  # as stored on disk
  pretrained.save(
    "tiny",
    params,
    denoisers.to_dict(model),
    {"name": "tiny", "recommended": settings},
    root=str(tmp_path),
  )
  _, _, manifest = pretrained.load("tiny", root=str(tmp_path))
  assert pretrained.recommended(manifest) == cfg
  for bad, match in (
    ({"rounds": -1}, "rounds must be"),
    ({"ipr": dict(settings["ipr"], overlap=1.5)}, "overlap"),
    ({"initial": dict(settings["initial"], stepz=3)}, "stepz"),
    ({"selector": "oracle"}, "oracle"),
  ):
    path = tmp_path / "tiny" / "manifest.json"
    stored = json.load(open(path))
    stored["recommended"] = dict(settings, **bad)
    json.dump(stored, open(path, "w"))
    with pytest.raises(
      ValueError, match=f"shipped model 'tiny': bad recommended settings.*{match}"
    ):
      pretrained.load("tiny", root=str(tmp_path))
  with pytest.raises(ValueError, match="carries no recommended settings"):
    pretrained.recommended({"name": "tiny"})


def test_params_from_ships_one_set_of_weights_under_two_names(tmp_path):
  """A manifest with params_from reads the other asset's npz (same hash check), keeps its own
  recommended settings; a params_from that names no asset, or a path, is rejected by name."""
  model = denoisers.TransformerConfig(
    height=4, width=4, channels=1, patch=2, dim=8, depth=1, heads=2
  )
  _, params = denoisers.build(model, jax.random.key(0))
  root = str(tmp_path)
  pretrained.save("base", params, denoisers.to_dict(model), {"name": "base"}, root=root)
  man = json.load(open(tmp_path / "base" / "manifest.json"))
  cfg = ipr.RefineConfig(rounds=7, selector="uncertainty")
  os.makedirs(tmp_path / "alias")
  for source, ok in (("base", True), ("nowhere", False), ("../base", False), ("", False)):
    json.dump(
      dict(man, name="alias", params_from=source, recommended=pretrained.settings_dict(cfg)),
      open(tmp_path / "alias" / "manifest.json", "w"),
    )
    if ok:
      _, got, alias = pretrained.load("alias", root)
      assert pretrained.recommended(alias) == cfg
      _, want, _ = pretrained.load("base", root)
      assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)))
      assert not os.path.exists(tmp_path / "alias" / "params.npz")
    else:
      with pytest.raises(ValueError, match="shipped model 'alias': params_from must name another"):
        pretrained.load("alias", root)
  json.dump(
    dict(man, name="alias", params_from="base", sha256="0" * 64),
    open(tmp_path / "alias" / "manifest.json", "w"),
  )
  with pytest.raises(ValueError, match="does not match the sha256"):
    pretrained.load("alias", root)


def test_recommended_settings_per_split(tmp_path):
  """`recommended_for` holds a split's own settings; other splits get the model's default; a bad
  split entry fails at load, named with its split."""
  model = denoisers.TransformerConfig(
    height=4, width=4, channels=1, patch=2, dim=8, depth=1, heads=2
  )
  _, params = denoisers.build(model, jax.random.key(0))
  root = str(tmp_path)
  default = ipr.RefineConfig(rounds=7, selector="uncertainty")
  restarts = ipr.RefineConfig(rounds=0, chains=9, pick="probe")
  pretrained.save(
    "split",
    params,
    denoisers.to_dict(model),
    {
      "name": "split",
      "recommended": pretrained.settings_dict(default),
      "recommended_for": {"minimal": pretrained.settings_dict(restarts)},
    },
    root=root,
  )
  _, _, man = pretrained.load("split", root)
  assert pretrained.recommended(man, "minimal") == restarts
  assert pretrained.recommended(man, "hard") == default == pretrained.recommended(man)
  bad = dict(man, recommended_for={"deep": dict(pretrained.settings_dict(restarts), chains=None)})
  json.dump(bad, open(tmp_path / "split" / "manifest.json", "w"))
  with pytest.raises(ValueError, match=r"'split\[deep\]'.*set chains >= 2"):
    pretrained.load("split", root)
