import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import evaluate, tasks, train, translate
from experiments.configs import sudoku_symbolic
from ipr_jax import checkpoints, pretrained

SCHEMA = {
  "benchmark",
  "variant",
  "split",
  "num_samples",
  "seed",
  "rounds",
  "split_rounds",
  "scored",
  "headline",
  "nfe",
  "metrics",
  "config",
  "checkpoint",
  "commit",
  "device",
  "command",
  "seconds",
}


def check_schema(saved: dict, rounds: int, every: int = 1) -> None:
  """The one results.json schema: int num_samples, split list, curves per method with one entry
  per scored round (every round, or with `every` k > 1 every k-th and the last) and the rounds
  they stand for."""
  assert SCHEMA <= set(saved)
  assert isinstance(saved["num_samples"], int) and saved["split"] == list(saved["metrics"])
  assert saved["rounds"] == list(range(rounds + 1))
  assert max(saved["split_rounds"].values()) == rounds
  for split in saved["split"]:
    assert set(saved["scored"][split]) == set(saved["metrics"][split])
    split_rounds = saved["split_rounds"][split]
    for method, curves in saved["metrics"][split].items():
      n, at = len(saved["nfe"][split][method]), saved["scored"][split][method]
      assert all(len(v) == n for v in curves.values()) and len(at) == n
      assert at[0] == 0 and at == sorted(set(at))
      if method == "recommended":  # its own rounds
        assert n >= 2
      elif n > 1:
        assert at == evaluate.scored_rounds(split_rounds, every)


def _same(a, b):
  return all(jax.tree.leaves(jax.tree.map(lambda x, y: bool(jnp.array_equal(x, y)), a, b)))


def test_best_step_selection():
  """Valid rate decides; at a tie, fewer duplicates (image Sudoku before any valid board), else
  the later step; an earlier all-zero step must not stay best forever."""
  first = {"valid": 0.0, "duplicate_count": 9.0, "step": 1}
  assert train.is_better({"valid": 0.0, "duplicate_count": 4.0, "step": 2}, first)
  assert not train.is_better({"valid": 0.0, "duplicate_count": 12.0, "step": 2}, first)
  assert not train.is_better({"valid": 0.0, "duplicate_count": 9.0, "step": 2}, first)
  assert train.is_better({"valid": 0.1, "duplicate_count": 20.0, "step": 2}, first)
  assert not train.is_better({"valid": 0.3, "step": 2}, {"valid": 0.5, "step": 1})
  assert train.is_better({"valid": 0.5, "step": 2}, {"valid": 0.5, "step": 1})
  assert train.is_better({"valid": 0.0, "step": 1}, {"valid": -1.0})  # the first validation


def test_smoke_train_checkpoint_refine(tmp_path):
  config = sudoku_symbolic.get_config("smoke")
  out = train.train(config, str(tmp_path))
  assert out["step"] == config.train.steps
  assert os.path.isdir(tmp_path / "checkpoints" / str(config.train.steps))
  rows = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
  assert rows[-1]["step"] == config.train.steps and "val_valid" in rows[-1]
  assert "val_duplicate_count" in rows[-1]  # secondary validation metrics are logged too
  # a 6-step model makes no valid board: 0% is not above the chance floor (0% for Sudoku), so
  # no step is kept as "best" and sampling falls back to the last checkpoint
  assert rows[-1]["val_floor"] == 0.0 and rows[-1]["val_valid"] == 0.0
  assert not os.path.exists(tmp_path / "best.json")
  assert checkpoints.manager(str(tmp_path / "best")).latest_step() is None
  config.eval.settings_from = "sudoku_symbolic"  # its recommended settings run as a method too
  results = evaluate.run(config, str(tmp_path), "refine")
  saved = json.load(open(tmp_path / "results.json"))
  check_schema(saved, 2)
  rec = pretrained.recommended(pretrained.manifest("sudoku_symbolic"))
  for split, share in (("hard", 1.0), ("medium", 0.5)):  # medium's budget is half of hard's
    assert len(saved["nfe"][split]["recommended"]) == round(rec.rounds * share) + 1
  for split, rounds in (("hard", 2), ("medium", 1)):  # medium's own budget (eval.rounds)
    ipr = saved["metrics"][split]["ipr_uniform"]
    assert len(ipr["valid"]) == rounds + 1 and len(saved["nfe"][split]["ipr_uniform"]) == rounds + 1
    matched = [k for k in saved["metrics"][split] if k.startswith("compute_matched")]
    assert len(matched) == 1
    ipr_nfe = sum(saved["nfe"][split]["ipr_uniform"])
    assert abs(sum(saved["nfe"][split][matched[0]]) - ipr_nfe) <= 0.1 * ipr_nfe  # matched
    assert os.path.exists(tmp_path / f"valid_{split}.png")
    assert os.path.exists(tmp_path / f"strip_{split}.png")
  assert results["plots"]
  # eval.score_every: the same runs scored at every 2nd round and the last, from the kept
  # history after the loop: the every-round figures at those rounds, the NFE regrouped
  source = evaluate.load_params(translate.translate(config), str(tmp_path))
  config.eval.score_every = 2
  every2 = evaluate.run(config, str(tmp_path / "every2"), "refine", params_source=source)
  check_schema(json.load(open(tmp_path / "every2" / "results.json")), 2, every=2)
  rec = saved["metrics"]["hard"]["recommended"]
  assert len(set(rec["duplicate_count"])) > 2  # figures that change across rounds: bites
  for split, methods in saved["metrics"].items():
    for method, curves in methods.items():
      at, single = every2["scored"][split][method], method.startswith("compute_matched")
      assert at == ([0] if single else evaluate.scored_rounds(len(curves["valid"]) - 1, 2))
      for name, ys in curves.items():
        np.testing.assert_allclose(every2["metrics"][split][method][name], np.take(ys, at))
      nfe = np.cumsum(saved["nfe"][split][method])[at]
      assert np.cumsum(every2["nfe"][split][method]).tolist() == nfe.tolist()
  assert "r16" in evaluate.table(every2, "valid") and "r15" not in evaluate.table(every2, "valid")


@pytest.mark.parametrize("bench", ["mnist_sudoku", "even_pixels", "counting_polygons"])
def test_other_benchmarks_smoke(tmp_path, bench):
  import importlib

  config = importlib.import_module(f"experiments.configs.{bench}").get_config("smoke")
  train.train(config, str(tmp_path))
  results = evaluate.run(config, str(tmp_path), "refine")
  saved = json.load(open(tmp_path / "results.json"))
  check_schema(saved, config.refine.rounds)
  assert saved["benchmark"] == bench and saved["headline"] == tasks.make_task(config).headline
  split = config.eval.splits[0]
  assert len(saved["metrics"][split]["ipr_uniform"][saved["headline"]]) == 3
  assert all(os.path.exists(p) for p in results["plots"])
  assert os.path.exists(tmp_path / f"strip_{split}.png")


def test_resume_after_kill_equals_uninterrupted(tmp_path, monkeypatch):
  monkeypatch.setattr(train.chance_floor, "floor_of", lambda *a: -1.0)  # keep a best step
  config = sudoku_symbolic.get_config("smoke")
  full = tmp_path / "full"
  train.train(config, str(full))
  part = tmp_path / "part"
  first = train.train(config, str(part), stop_at_step=3)  # ends right after its first checkpoint
  assert first["step"] == 3
  assert checkpoints.manager(str(part / "checkpoints")).latest_step() == 3
  second = train.train(config, str(part))
  assert second["step"] == config.train.steps
  run = translate.translate(config)
  _, _, target = train.build_state(run)
  a, _ = checkpoints.restore(checkpoints.manager(str(full / "checkpoints")), target)
  b, _ = checkpoints.restore(checkpoints.manager(str(part / "checkpoints")), target)
  assert _same(a.params, b.params) and _same(a.ema_params, b.ema_params)
  # eval.checkpoint picks DIR/best or the last checkpoint; anything else is a clear error
  config.eval.checkpoint = "last"
  _, params, source = evaluate.load_params(translate.translate(config), str(full))
  assert source.endswith(f"checkpoints/{config.train.steps}") and _same(params, a.ema_params)
  config.eval.checkpoint = "best"
  assert "/best/" in evaluate.load_params(translate.translate(config), str(full))[2]
  config.eval.checkpoint = "newest"
  with pytest.raises(ValueError, match="eval.checkpoint"):
    translate.translate(config)


def test_refine_without_checkpoint_is_clear_error(tmp_path):
  config = sudoku_symbolic.get_config("smoke")
  with pytest.raises(checkpoints.CheckpointError, match="run --mode train first"):
    evaluate.run(config, str(tmp_path), "refine")


@pytest.mark.skipif(
  "sudoku_symbolic" not in pretrained.available(), reason="shipped model not present"
)
def test_quickstart_reduced(tmp_path):
  from experiments import quickstart

  results = quickstart.main(["--num", "4", "--rounds", "2", "--out", str(tmp_path)])
  check_schema(json.load(open(tmp_path / "results.json")), 2)
  assert results["num_samples"] == 2 and len(results["per_sample"]["valid"]) == 4
  assert len(results["metrics"]["hard"]["ipr_uncertainty"]["valid"]) == 3  # the manifest's selector
  for name in ("results.json", "valid_hard.png", "valid_medium.png", "strip.png"):
    assert os.path.exists(tmp_path / name)


SHIPPED_MODELS = [
  "sudoku_symbolic",
  "sudoku_symbolic_cpu",
  "sudoku_symbolic_long",
  "mnist_sudoku_cpu",
  "mnist_sudoku_latent",
  "mnist_sudoku_latent_19k",
  "mnist_sudoku_latent_mnist_15k",
  "even_pixels",
  "counting_polygons",
]


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_shipped_model_manifest_and_hash(name):
  if name not in pretrained.available():
    pytest.skip("shipped model not present")
  apply, params, manifest = pretrained.load(name)
  for key in ("config", "command", "steps", "train_wall_s", "sha256", "num_params", "recommended"):
    assert key in manifest
  rec, trained = pretrained.recommended(manifest), manifest["config"]
  if "sample" in trained:  # manifests written before the config sections became dataclasses
    initial, ipr = trained["sample"], trained["refine"]
  else:
    initial, ipr = trained["refine"]["initial"], trained["refine"]["ipr"]
  assert rec.initial.steps_per_patch == initial["steps_per_patch"]
  if rec.ipr.steps_per_patch != ipr["steps_per_patch"]:  # more, cheaper rounds (image Sudoku):
    # within the NFE of the trained config's rounds (its steps and overlap), never more
    from experiments.studies import sudoku_budget

    assert (
      manifest["benchmark"] == "mnist_sudoku" and rec.ipr.steps_per_patch < ipr["steps_per_patch"]
    )
    paper = dataclasses.replace(
      rec,
      rounds=trained["refine"]["rounds"],
      ipr=dataclasses.replace(
        rec.ipr, steps_per_patch=ipr["steps_per_patch"], overlap=ipr["overlap"]
      ),  # the trained config's rounds (the paper's)
    )
    assert rec.rounds > paper.rounds
    assert sudoku_budget.planned_nfe(rec, 81) <= sudoku_budget.planned_nfe(paper, 81)
  assert manifest["num_params"] == sum(np.size(x) for x in jax.tree.leaves(params))


def _config_mismatches(recorded: dict, current: dict, path: str = "") -> list:
  """Keys present in both whose values differ (sequences compared as lists)."""
  out = []
  for key, value in recorded.items():
    if key not in current:
      continue  # a key the config file no longer has (translate would reject it anyway)
    here, now = f"{path}.{key}", current[key]
    if isinstance(value, dict) and isinstance(now, dict):
      out += _config_mismatches(value, now, here)
    elif (list(value) if isinstance(value, (list, tuple)) else value) != (
      list(now) if isinstance(now, (list, tuple)) else now
    ):
      out.append((here, value, now))
  return out


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_shipped_model_recipe_is_its_config_variant(name):
  """Reproducibility: the training sections of a shipped model's manifest (seed, data, model,
  time sampler, train) are what `get_config(variant)` of its config file gives today, so the
  documented `--config experiments/configs/<benchmark>.py:<variant>` command retrains it."""
  import importlib

  if name not in pretrained.available():
    pytest.skip("shipped model not present")
  manifest = pretrained.manifest(name)
  config = importlib.import_module(f"experiments.configs.{manifest['benchmark']}")
  current = config.get_config(manifest["variant"]).to_dict()
  recorded = {
    k: manifest["config"][k]
    for k in ("seed", "data", "model", "time_sampler", "optim", "loss", "train")
    if k in manifest["config"]
  }  # older manifests predate the data section
  assert {"model", "train"} <= set(recorded)
  mismatches = _config_mismatches(recorded, current)
  # where the MNIST files lay on the training machine (IPR_JAX_MNIST_DIR) is not the recipe
  assert [m for m in mismatches if m[0] != ".data.idx_dir"] == []


def _fill_one_cell(apply, params, x, sampler_cfg):
  """(sample, missing bool[N, 81]): one cell per board left to generate, spread over the grid."""
  from ipr_jax import sampling

  n = len(x)
  missing = np.zeros((n, 81), bool)
  missing[np.arange(n), (np.arange(n) * 37) % 81] = True
  res = sampling.sample(
    apply,
    params,
    jax.random.key(0),
    jax.random.normal(jax.random.key(1), x.shape),
    jnp.asarray(~missing),
    jnp.asarray(x),
    sampler_cfg,
  )
  return res, missing


def test_shipped_image_sudoku_model_fills_a_missing_cell():
  """With 80 digit images given, the shipped image model must draw the one missing digit so that
  the evaluator's classifier reads the right value (a broken or untrained model gets ~1 in 9)."""
  if "mnist_sudoku_cpu" not in pretrained.available():
    pytest.skip("shipped model not present")
  from experiments.configs import mnist_sudoku
  from ipr_jax import sampling
  from ipr_jax.evaluation import digit_classifier

  apply, params, _ = pretrained.load("mnist_sudoku_cpu")
  cls_apply, cls_params, man = digit_classifier.load(mnist_sudoku.get_config("cpu").data.source)
  task = tasks.make_task(mnist_sudoku.get_config("cpu"))
  items = task.test_items("medium", 24, validation=True)
  n = len(items.x)
  res, missing = _fill_one_cell(
    apply, params, items.x, sampling.SamplerConfig(steps_per_patch=3, overlap=0.0, alpha=0.5)
  )
  read = np.asarray(digit_classifier.board_digits(cls_apply, cls_params, res.x, cell=man["cell"]))
  read = read.reshape(n, 81)[missing]
  truth = items.labels["boards"].reshape(n, 81)[missing]
  assert np.mean(read == truth) >= 0.75


@pytest.mark.skipif(
  "mnist_sudoku_latent" not in pretrained.available(), reason="shipped model not present"
)
def test_shipped_latent_image_sudoku_model_fills_a_missing_cell():
  """The shipped latent model with its codec: given 80 encoded digit cells, the one missing
  cell it generates decodes to a digit the evaluator reads right (an untrained model: ~1 in 9),
  and its codec round-trips held-out boards so that the classifier still reads them."""
  from experiments import codec
  from experiments.configs import mnist_sudoku

  config = mnist_sudoku.get_config("latent_cpu")
  config.eval.pretrained = "mnist_sudoku_latent"
  apply, params, manifest = pretrained.load("mnist_sudoku_latent")
  encode, decode, codec_params = pretrained.load_codec("mnist_sudoku_latent")
  task = translate.translate(config, codec=codec.load(translate.codec_stage(config), "unused")).task
  items = task.test_items("medium", 24, validation=True)  # latents f32[24, 9, 9, 16]
  n = len(items.x)
  truth = task.metrics(jnp.asarray(items.x))
  assert float(jnp.mean(truth["valid"])) >= 0.9  # decode(encode(board)) is still read as valid
  res, _ = _fill_one_cell(apply, params, items.x, pretrained.recommended(manifest).initial)
  assert float(jnp.mean(task.metrics(res.x)["valid"])) >= 0.75
  x = decode(codec_params, res.x)
  assert x.shape == (n, 72, 72, 1) and encode(codec_params, x).shape == items.x.shape


@pytest.mark.skipif(
  "mnist_sudoku_latent_19k" not in pretrained.available(), reason="shipped model not present"
)
def test_quickstart_image_sudoku_reduced(tmp_path):
  """Every 2nd round and the last are scored; their NFE adds up to the rounds' NFE."""
  from experiments import quickstart

  argv = ["--benchmark", "mnist_sudoku", "--num", "4", "--rounds", "3", "--score_every", "2"]
  results = quickstart.main([*argv, "--out", str(tmp_path)])
  check_schema(json.load(open(tmp_path / "results.json")), 3, every=2)
  assert results["benchmark"] == "mnist_sudoku" and len(results["per_sample"]["valid"]) == 4
  assert all(len(v) == 3 for v in results["per_sample"]["valid"])
  nfe = results["nfe"]["hard"]["ipr_uncertainty"]
  assert nfe[1] == 2 * nfe[2] > 0  # rounds 1-2, then round 3 (the rounds cost the same)
  assert os.path.exists(tmp_path / "strip.png")
  with pytest.raises(SystemExit, match="score_every"):
    quickstart.main([*argv[:-1], "0", "--out", str(tmp_path)])


def test_scored_rounds():
  assert evaluate.scored_rounds(48) == list(range(49))
  every_third = evaluate.scored_rounds(144)  # the image quickstart's default 144 rounds
  assert every_third == list(range(0, 145, 3)) and len(every_third) <= evaluate.MAX_SCORED
  assert evaluate.scored_rounds(5, 2) == [0, 2, 4, 5] and evaluate.scored_rounds(0) == [0]
  with pytest.raises(ValueError, match="score_every"):
    evaluate.scored_rounds(5, 0)


@pytest.mark.skipif(
  "mnist_sudoku_latent_19k" not in pretrained.available(), reason="shipped model not present"
)
def test_scores_history_as_refine_scores_in_the_loop():
  """Scoring the kept boards of some rounds after refine gives the in-loop metric's values."""
  from experiments import shipped
  from ipr_jax import refine

  apply, params, manifest, run = shipped.open_model("mnist_sudoku", workdir="unused")
  items = run.task.test_items("hard", 3)
  cfg = dataclasses.replace(pretrained.recommended(manifest), rounds=3, keep_history=True)
  res = refine.refine(
    apply,
    params,
    jax.random.key(1),
    jnp.asarray(items.x),
    jnp.asarray(items.eligible),
    cfg,
    run.task.metric_fn,
    metric_params=run.task.metric_params,
  )
  got = evaluate.score_history(run.task.metric_fn, run.task.metric_params, res.history, [0, 2, 3])
  assert set(got) == set(res.metrics)
  for name, values in got.items():
    np.testing.assert_allclose(values, np.asarray(res.metrics[name])[[0, 2, 3]], atol=1e-6)


@pytest.mark.skipif(
  "mnist_sudoku_latent_mnist" not in pretrained.available(), reason="shipped model not present"
)
def test_shipped_real_mnist_latent_model_loads_offline_and_fits_its_codec():
  """The real-MNIST latent model ships with its 28x28 codec; loading both needs no MNIST file:
  the denoiser reads the codec's d channels, the codec maps a 252x252 board to the 9x9 grid of
  latents and back, and its recommendation is the uncertainty selector it was measured with."""
  apply, params, manifest = pretrained.load("mnist_sudoku_latent_mnist")
  encode, decode, codec_params = pretrained.load_codec("mnist_sudoku_latent_mnist")
  cfg = pretrained.codec_config("mnist_sudoku_latent_mnist")
  assert (cfg.patch, cfg.latent_dim) == (28, manifest["model"]["channels"])
  assert manifest["config"]["data"]["source"] == "idx_dir"
  board = jnp.full((2, 252, 252, 1), -1.0)
  z = encode(codec_params, board)
  assert z.shape == (2, 9, 9, cfg.latent_dim) and decode(codec_params, z).shape == board.shape
  rec = pretrained.recommended(manifest)
  assert (rec.selector, rec.rounds) == ("uncertainty", 30)
  # its continuation config warm-starts from it over the same codec (else the codec stage
  # refuses the copy) and the same denoiser
  from experiments import codec
  from experiments.configs import mnist_sudoku

  for variant, base in (
    ("latent_mnist_more", "mnist_sudoku_latent_mnist"),
    ("latent_mnist_21k", "mnist_sudoku_latent_mnist_15k"),
    ("latent_mnist_33k", "mnist_sudoku_latent_mnist_21k"),
  ):
    assert base in pretrained.available(), f"{variant} warm-starts from {base}, not shipped"
    config = mnist_sudoku.get_config(variant)
    stage = translate.codec_stage(config)
    assert stage.init_from == base and stage.source == "idx_dir"
    assert codec.config_of(stage, codec.cell_of(stage)) == pretrained.codec_config(base)
    config.eval.pretrained = base  # the task reads the shipped codec
    run = translate.translate(config, codec=codec.load(translate.codec_stage(config), "unused"))
    stored = pretrained.model_config(pretrained.manifest(base)["model"])
    translate.check_same_model(stored, run.model, base)  # ValueError if not
  # the 15k model (the best on hard) ships the medium settings measured better there, and for
  # hard the cheapest rounds (1 step per cell, 288 in the NFE of the paper's 30)
  rec = pretrained.manifest("mnist_sudoku_latent_mnist_15k")
  hard, medium = pretrained.recommended(rec, "hard"), pretrained.recommended(rec, "medium")
  assert (hard.rounds, hard.resampling_ratio, hard.selector) == (288, 0.25, "uncertainty")
  assert hard.ipr.steps_per_patch == 1
  assert (medium.resampling_ratio, medium.ipr.variance) == (0.5, "fixed_small")


def test_shipped_even_pixels_model_redraws_a_patch_in_the_images_two_hues():
  """With 63 of 64 patches given, the shipped Even Pixels model redraws the missing patch in
  its image's two hues, every pixel near one of them (noise or blends are far from both); it
  does not make up the colour count (docs/results/even_pixels.md), so that is not asserted."""
  if "even_pixels" not in pretrained.available():
    pytest.skip("shipped model not present")
  from experiments.studies import image_diagnostics as diag
  from experiments.configs import even_pixels

  apply, params, manifest = pretrained.load("even_pixels")
  task = tasks.make_task(even_pixels.get_config("cpu"))
  x = np.asarray(task.test_items("test", 8, validation=True).x)
  cfg = pretrained.recommended(manifest).initial
  out = np.asarray(
    diag.regenerate(apply, params, jax.random.key(0), jnp.asarray(x), task.grid, 1, cfg)
  )
  hues = [np.unique(img.reshape(-1, 3), axis=0) for img in x]
  assert all(len(h) == 2 for h in hues)

  def to_nearest_hue(imgs):  # per pixel: largest channel gap to the nearer of its image's hues
    return np.stack([np.abs(imgs[i][..., None, :] - hues[i]).max(-1).min(-1) for i in range(8)])

  changed = np.abs(out - x).max(-1) > 1e-4  # the redrawn pixels (those that differ)
  dist = to_nearest_hue(out)
  assert changed.sum() >= 8 * 4 and (dist <= 1e-4)[~changed].all()
  assert np.mean(dist[changed] < 0.25) >= 0.85, np.mean(dist[changed] < 0.25)  # here 0.95
  noise = np.asarray(jax.random.normal(jax.random.key(1), x.shape))  # what the check rejects
  assert np.mean(to_nearest_hue(noise) < 0.25) < 0.05


def test_shipped_counting_polygons_model_redraws_a_missing_patch_near_the_truth():
  """With 63 of 64 patches given, the shipped Counting Polygons model redraws the last one close
  to the truth (mean |error| per value 0.34 here; a fill with the page's colour 0.27, N(0, 1)
  noise, which an untrained model leaves there, 1.1). It draws near-blank pages on its own
  (docs/results/counting_polygons.md), so no unconditional figure is asserted."""
  if "counting_polygons" not in pretrained.available():
    pytest.skip("shipped model not present")
  from experiments.studies import image_diagnostics as diag
  from experiments.configs import counting_polygons

  apply, params, manifest = pretrained.load("counting_polygons")
  task = tasks.make_task(counting_polygons.get_config("cpu"))
  x = jnp.asarray(task.test_items("test", 32, validation=True).x)
  key, n = jax.random.key(0), 32 * 16 * 16 * 3  # one 16x16 RGB patch per item
  out = diag.regenerate(
    apply, params, key, x, task.grid, 1, pretrained.recommended(manifest).initial
  )
  error = float(jnp.abs(out - x).sum()) / n
  noise = float(jnp.abs(diag.references(key, x, task.grid, 1)["noise fill"] - x).sum()) / n
  assert noise > 1.0 and error < 0.6, (error, noise)


def test_chance_floor_inputs_and_the_sudoku_floor():
  """Noise, blank and shuffled inputs have the items' shape; shuffling keeps every region's
  content (a permutation); symbolic Sudoku scores 0 on all of them and 1 on the truth."""
  from experiments import chance_floor

  task = tasks.make_task(sudoku_symbolic.get_config("smoke"))
  items = task.test_items("hard", 8)
  inputs = chance_floor.floor_inputs(items.x, task.grid, jax.random.key(0))
  assert set(inputs) == set(chance_floor.INPUTS)
  assert all(v.shape == items.x.shape for v in inputs.values())
  got = np.sort(np.asarray(inputs["shuffled_truth"]).reshape(8, 81, 9), axis=1)
  np.testing.assert_array_equal(got, np.sort(items.x.reshape(8, 81, 9), axis=1))
  m = chance_floor.measure(task, items.x, jax.random.key(0))
  assert m["ground_truth"]["valid"] == 1.0
  assert all(m[name]["valid"] == 0.0 for name in chance_floor.INPUTS)
  assert chance_floor.floor_of(task, items.x, jax.random.key(0)) == 0.0


@pytest.mark.skipif(
  "sudoku_symbolic_cpu" not in pretrained.available(), reason="shipped model not present"
)
def test_eval_pretrained_uses_the_shipped_weights(tmp_path):
  """`eval.pretrained` makes the experiment modes sample with a shipped model (no training run);
  its denoiser must be the config's, and the name must be shipped."""
  config = sudoku_symbolic.get_config("cpu")
  config.eval.pretrained = "sudoku_symbolic_cpu"
  run = translate.translate(config)
  _, got, source = evaluate.load_params(run, str(tmp_path))
  _, want, _ = pretrained.load("sudoku_symbolic_cpu")
  assert "shipped model 'sudoku_symbolic_cpu'" in source
  assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)))
  small = sudoku_symbolic.get_config("smoke")
  small.eval.pretrained = "sudoku_symbolic_cpu"
  with pytest.raises(
    ValueError,
    match="eval.pretrained='sudoku_symbolic_cpu' is a Transformer"
    "Config that differs from the config's TransformerConfig in: dim 64 vs 16",
  ):
    translate.translate(small)  # before any work
  small.eval.pretrained = "sudoku_symbolic_huge"
  with pytest.raises(ValueError, match="eval.pretrained names no shipped model"):
    translate.translate(small)


def test_warm_start_from_a_shipped_model(tmp_path):
  """train.init_from: a fresh run starts at step 0 from the shipped params (as raw and EMA
  params, two buffers, zero optimiser moments); a run with a checkpoint resumes from it instead;
  an unknown name or another architecture is a named error before any training."""
  config = sudoku_symbolic.get_config("cpu_restart")
  assert config.train.init_from == "sudoku_symbolic_long"
  config.train.density_images = 256
  run = translate.translate(config)
  _, _, state, data_state, mgr = train.restore(run, str(tmp_path))
  _, want, _ = pretrained.load("sudoku_symbolic_long")
  assert int(state.step) == 0 and data_state is None
  assert _same(state.params, want) and _same(state.ema_params, want)
  assert state.params is not state.ema_params
  moments = [x for x in jax.tree.leaves(state.opt_state) if jnp.issubdtype(x.dtype, jnp.floating)]
  assert moments and not any(bool(jnp.any(x)) for x in moments)
  assert float(jnp.sum(state.time_pdf)) > 0  # the mean_beta table is still built
  moved = state.replace(step=7, params=jax.tree.map(lambda x: x + 1.0, state.params))
  checkpoints.save(mgr, 7, moved)
  mgr.wait_until_finished()
  _, _, resumed, _, _ = train.restore(run, str(tmp_path))
  assert int(resumed.step) == 7 and _same(resumed.params, moved.params)
  config.train.init_from = "sudoku_symbolic_huge"
  with pytest.raises(ValueError, match="train.init_from names no shipped model"):
    translate.translate(config)
  small = sudoku_symbolic.get_config("smoke")
  small.train.init_from = "sudoku_symbolic_long"
  with pytest.raises(
    ValueError, match="differs from the config's TransformerConfig in: dim 64 vs 16"
  ):
    translate.translate(small)
  small.train.init_match = "everything"
  with pytest.raises(ValueError, match="train.init_match must be one of"):
    translate.translate(small)


def test_warm_start_matching_shapes_into_another_width(tmp_path):
  """init_match="shapes": a model with other input/output widths (a 16-channel latent model)
  takes every param of the shipped symbolic model whose name and shape match; the rest keeps
  its initialisation; a shipped model of another kind is a named error."""
  config = sudoku_symbolic.get_config("cpu")
  config.model.transformer.update(skip=False)
  config.train.update(init_from="sudoku_symbolic_long", init_match="shapes")
  config.train.density_images = 256
  run = translate.translate(config)
  apply, _, fresh, _, _ = train.restore(run, str(tmp_path / "fresh"))
  _, want, _ = pretrained.load("sudoku_symbolic_long")
  assert _same(fresh.params, want)  # same architecture: everything matches
  import dataclasses

  wide = dataclasses.replace(run, model=dataclasses.replace(run.model, channels=16))
  _, _, state, _, _ = train.restore(wide, str(tmp_path / "wide"))
  ours, theirs = pretrained.flatten(state.params), pretrained.flatten(want)
  kept = sorted(k for k in ours if not np.array_equal(ours[k], theirs.get(k)))
  assert kept == ["embed/kernel", "head/bias", "head/kernel"]
  assert ours["embed/kernel"].shape == (16, 64) and _same(state.ema_params, state.params)
  from experiments.configs import even_pixels

  other = even_pixels.get_config("smoke")
  other.model.kind = "unet"
  other.train.update(init_from="sudoku_symbolic_long", init_match="shapes")
  with pytest.raises(ValueError, match="is a TransformerConfig; the config's denoiser is a UNet"):
    translate.translate(other)


def test_sudoku_diagnostics_oracle_and_chance():
  """The one-step diagnostic: an oracle velocity decodes every unknown cell; a zero velocity
  (x_hat = the noise) scores chance, 1/9, with nothing known; the log-variance is read out."""
  from experiments.studies import sudoku_diagnostics as diag
  from ipr_jax import regions
  from ipr_jax.data import sudoku
  from ipr_jax.denoisers.common import DenoiserOutput

  grid = regions.make_grid(9, 9, 1)
  boards, givens = sudoku.validation_set((20, 20), 64)
  x = jnp.asarray(sudoku.to_symbolic(boards))

  def oracle(params, z, t_region):
    t = regions.to_pixels(t_region, grid)
    eps = jnp.where(t > 0, (z - (1.0 - t) * x) / jnp.maximum(t, 1e-6), 0.0)
    return DenoiserOutput(eps - x, jnp.zeros_like(z), jnp.full(t_region.shape, 0.5))

  def zero(params, z, t_region):
    return DenoiserOutput(jnp.zeros_like(z), jnp.zeros_like(z), jnp.ones(t_region.shape))

  acc, logvar = diag.one_step(oracle, None, x, jnp.asarray(givens), jax.random.key(0), grid)
  assert float(acc) == 1.0 and abs(float(logvar) - 2 * np.log(0.5)) < 1e-5
  acc, _ = diag.one_step(zero, None, x, jnp.zeros((64, 81), bool), jax.random.key(1), grid)
  assert abs(float(acc) - 1 / 9) < 0.02


def test_image_diagnostics_oracle():
  """An oracle denoiser (the true velocity of known data) denoises with zero error at every
  level, and Euler over its velocity field lands on the data; contrast reads the channels."""
  from experiments.studies import image_diagnostics as diag
  from ipr_jax import regions, sampling
  from ipr_jax.denoisers.common import DenoiserOutput

  grid = regions.make_grid(8, 8, 4)
  x = jax.random.uniform(jax.random.key(0), (3, 8, 8, 3), minval=-1.0, maxval=1.0)

  def oracle(params, z, t_region):  # u = eps - x, eps = (z - (1 - t) x) / t
    t = regions.to_pixels(t_region, grid)
    eps = (z - (1.0 - t) * x) / t
    return DenoiserOutput(eps - x, jnp.zeros_like(z), jnp.zeros(t_region.shape))

  for t in diag.LEVELS:
    assert diag.denoising_error(oracle, None, x, grid, t, jax.random.key(1)) < 1e-5
  z0 = jax.random.normal(jax.random.key(2), x.shape)
  np.testing.assert_allclose(diag.euler(oracle, None, z0, grid, steps=10), x, atol=1e-4)
  assert (
    diag.contrast(jnp.asarray([[[[0.4, -1.0, 0.0]]]])) == "largest channel +0.400, smallest -1.000"
  )
  known = diag.regenerate_mask(jax.random.key(3), 5, grid.num_regions, 2)
  assert known.shape == (5, 4) and (np.asarray(known).sum(1) == 2).all()
  assert not np.array_equal(known[0], known[1]) or not np.array_equal(known[0], known[2])
  with pytest.raises(ValueError, match="k must be in"):
    diag.regenerate_mask(jax.random.key(3), 5, grid.num_regions, 5)
  cfg = sampling.SamplerConfig(steps_per_patch=4, overlap=0.5)
  np.testing.assert_allclose(
    diag.regenerate(oracle, None, jax.random.key(4), x, grid, 2, cfg), x, atol=1e-4
  )  # the oracle repairs what it regenerates

  def blind(params, z, t_region):  # regenerated regions move to 0, given ones are held
    return DenoiserOutput(
      z / jnp.maximum(regions.to_pixels(t_region, grid), 1e-3),
      jnp.zeros_like(z),
      jnp.zeros(t_region.shape),
    )

  def moved(out):  # bool[3, R]: the regions where out differs from x
    return np.asarray(jnp.abs(regions.patchify(out - x, grid)).max(-1) > 1e-4)

  changed = moved(diag.regenerate(blind, None, jax.random.key(4), x, grid, 1, cfg))
  assert (changed.sum(1) == 1).all()  # one region per item, the rest given
  refs = diag.references(jax.random.key(4), x, grid, 1)  # the same regions, filled without a model
  colour = diag.modal_colour(x)
  for name, filled in refs.items():
    np.testing.assert_array_equal(moved(filled), changed, err_msg=name)
  bg = np.asarray(regions.patchify(refs["background fill"], grid))
  for i in range(3):
    np.testing.assert_array_equal(
      bg[i][changed[i]].reshape(-1, 3), np.broadcast_to(colour[i], (16, 3))
    )
  page = np.zeros((2, 4, 4, 3), np.float32)
  page[0, :2, :1] = 0.5  # 2 of 16 pixels inked: the page's colour is still 0
  page[1] = 0.3
  page[1, 0, :3] = -0.2  # 3 pixels of -0.2 sort first but are not the most frequent
  np.testing.assert_array_equal(diag.modal_colour(page), np.float32([[0, 0, 0], [0.3, 0.3, 0.3]]))


def test_recipe_table_names_the_reverse_std_of_each_line(tmp_path):
  from experiments.studies import sudoku_recipe

  line = {
    "row": "baseline",
    "change": "as shipped",
    "steps": 2400,
    "cpu_minutes": 12.0,
    "hard": {"valid": {"0": 0.2, "15": 0.5, "30": 0.56}},
    "medium": {"valid": {"0": 0.8}},
  }
  path = tmp_path / "results.jsonl"
  path.write_text(json.dumps(line) + "\n" + json.dumps({**line, "variance": "fixed_small"}) + "\n")
  rows = sudoku_recipe.table(str(path)).splitlines()[2:]
  assert [r.split(" | ")[2] for r in rows] == [
    "learned_range",
    "fixed_small",
  ]  # old lines: the papers'
  assert rows[0].endswith("| 20% | 50% | 56% | 80% | - |")
  with pytest.raises(ValueError, match="unknown row"):
    sudoku_recipe.row_config("no_such_row", 10)
  wide = sudoku_recipe.row_config("wide128", 10)  # a nested key; a row's own length wins
  assert wide.model.transformer.dim == 128 and wide.train.steps == wide.train.eval_every == 1200
  assert sudoku_recipe.row_config("baseline", 10).model.transformer.dim == 64
  assert (
    sudoku_recipe.row_config("seed1", 10).seed,
    sudoku_recipe.row_config("baseline", 10).seed,
  ) == (1, 0)
  shipped = sudoku_recipe.row_config("shipped_cpu", 10)  # scored without training: its length
  assert shipped.train.steps == pretrained.manifest(shipped.eval.pretrained)["steps"]
  assert sudoku_recipe.row_config("steps4800", 10).train.steps == 4800
  sudoku_recipe.ROWS["_bad"] = ("typo", {"model.transformer.width": 96})
  try:
    with pytest.raises(ValueError, match="model.transformer.width is not a key"):
      sudoku_recipe.row_config("_bad", 10)
  finally:
    del sudoku_recipe.ROWS["_bad"]


def test_budget_run_method_of_each_kind():
  """run_method's three shapes of result (one chain's curve, lowest-sigma chains, vote then a
  correction round) on a tiny model: NFE within the plan (hard puzzles have < 81 unknowns)."""
  from experiments.studies import sudoku_budget
  from tests.tiny import make_tiny

  run = translate.translate(sudoku_symbolic.get_config("cpu"))
  items = run.task.test_items("hard", 2)
  apply = make_tiny(run.task.grid)
  params = {"a": jnp.float32(0.7), "sigma": jnp.linspace(0.1, 2.0, 81)}
  base = sudoku_budget.paper_config(run)
  key = jax.random.key(0)
  got = {}
  for name in ("ipr_uniform_ratio0.5", "chains2_lowest_sigma", "chains3_vote"):
    [(label, c)] = sudoku_budget.run_method(name, apply, params, items, run, key)
    cfg = got[name] = sudoku_budget.method_config(name, base), c
    plan = (cfg[0].chains or 1) * sudoku_budget.planned_nfe(cfg[0], 81)
    assert label == name and 0 < c["nfe"][-1] <= plan + 81 and 0 <= c["valid"][-1] <= 1, name
  cfg, one = got["ipr_uniform_ratio0.5"]
  assert len(one["nfe"]) == len(one["valid"]) == cfg.rounds + 1  # a curve over the rounds
  assert len(got["chains2_lowest_sigma"][1]["per_chain_final"]) == 2
  vote = got["chains3_vote"][1]
  assert len(vote["nfe"]) == 1 and 0 <= vote["after_vote"] <= 1
  # restart curves: the probe and lowest-sigma picks among the first 1..K restarts
  curves = dict(sudoku_budget.run_method("restarts_curve2", apply, params, items, run, key))
  assert set(curves) == {"restarts_probe", "restarts_lowest_sigma"}
  for c in curves.values():
    assert len(c["valid"]) == 2 and c["restarts_any"][0] <= c["restarts_any"][1]
    assert c["valid"][0] == c["restarts_any"][0]  # one restart: the pick is restart 0


def test_budget_study_runs_on_the_image_sudoku_latent_model(tmp_path):
  """--benchmark mnist_sudoku: the shipped latent model, its codec and the decoded board's
  classifier as the metric (its params passed to refine), on validation boards; a model of
  another benchmark is a named exit."""
  from experiments.studies import sudoku_budget

  out = str(tmp_path / "budget")
  args = ["--benchmark", "mnist_sudoku", "--split", "medium", "--num", "2", "--validation"]
  res = sudoku_budget.main([*args, "--methods", "ipr_uncertainty_ratio1", "--out", out])
  assert (res["benchmark"], res["model"], res["validation"]) == (
    "mnist_sudoku",
    "mnist_sudoku_latent_19k",
    True,
  )
  c = res["curves"]["ipr_uncertainty_ratio1"]
  assert len(c["valid"]) > 2 and all(0 <= v <= 1 for v in c["valid"])
  assert c["nfe"][-1] <= 1683 and "--validation" in res["command"]
  assert json.load(open(out + "_medium_val.json"))["curves"].keys() == {"ipr_uncertainty_ratio1"}
  # the plot is named like the record: a validation run leaves the test set's plot alone
  assert res["plot"] == out + "_medium_val.png" and not os.path.exists(out + "_medium.png")
  # no paper-rounds curve here: the NFE of 30 paper rounds is planned (the batch's largest plan)
  assert res["paper_nfe"] == 1683 and set(res["at_paper_nfe"]) == {"ipr_uncertainty_ratio1"}
  with pytest.raises(SystemExit, match="is a sudoku_symbolic model, not mnist_sudoku"):
    sudoku_budget.main([*args, "--model", "sudoku_symbolic", "--methods", "", "--out", out])
  # one round-0 pass in another order, with the typicality doubt: labelled, command recorded
  res = sudoku_budget.main(
    [*args, "--methods", "sequential_3_orderrandom", "--doubt", "typicality", "--out", out]
  )
  label = "sequential_3_orderrandom@learned_range,typicality"
  assert len(res["curves"][label]["valid"]) == 1 and res["curves"][label]["nfe"][0] <= 3 * 54
  assert res["commands"][label].endswith(
    "--methods sequential_3_orderrandom --variance learned_range --doubt typicality"
  )


def test_budget_methods_are_planned_to_the_paper_budget():
  import dataclasses
  from experiments.studies import sudoku_budget
  from ipr_jax import refine, regions, sampling
  from tests.tiny import make_tiny

  # planned_nfe is what the refine then spends (tiny model, every region eligible)
  grid = regions.make_grid(6, 6, 2)
  params = {"a": jnp.float32(0.7), "sigma": jnp.linspace(0.1, 2.0, 9)}
  cfg = refine.RefineConfig(
    rounds=3,
    resampling_ratio=0.5,
    final_ratio=0.2,
    initial=sampling.SamplerConfig(2, 0.0),
    ipr=sampling.SamplerConfig(3, 0.5),
  )
  res = refine.refine(
    make_tiny(grid), params, jax.random.key(0), jnp.zeros((2, 6, 6, 2)), jnp.ones((2, 9), bool), cfg
  )
  assert sudoku_budget.planned_nfe(cfg, 9) == int(np.sum(res.nfe))
  run = translate.translate(sudoku_symbolic.get_config("cpu"))
  base = dataclasses.replace(run.refine, rounds=30, selector="uniform")
  paper = sudoku_budget.planned_nfe(base, 81)
  assert paper == 3 * 81 + 30 * (10 + 19 * 2)  # 20 cells a round at 10 steps, overlap 0.8
  for name in sudoku_budget.ROUND_METHODS:
    nfe = sudoku_budget.planned_nfe(sudoku_budget.method_config(name, base), 81)
    assert 0.9 * paper <= nfe <= paper, name  # never more, at most 10% less
  half = sudoku_budget.method_config("ipr_uncertainty_ratio0.5", base)
  assert (half.rounds, half.resampling_ratio, half.selector) == (16, 0.5, "uncertainty")
  assert sudoku_budget.method_config("ipr_uniform_ratio0.25", base) == base  # the paper's own
  assert sudoku_budget.method_config("ipr_uniform_ratio0.6", base).resampling_ratio == 0.6
  assert sudoku_budget.method_config("sequential", base) is None
  assert sudoku_budget.method_config("sequential_3_orderrandom", base) is None
  with pytest.raises(ValueError, match="order must be one of"):
    sudoku_budget.method_config("sequential_3_orderspiral", base)
  with pytest.raises(ValueError, match="unknown method"):
    sudoku_budget.method_config("ipr_ratio0.5", base)
  # the first chain methods are the general ones at the paper's ratio (12 rounds in each of 2)
  assert sudoku_budget.method_config("chains2_uncertainty", base) == dataclasses.replace(
    base, rounds=12, chains=2, selector="uncertainty"
  )
  for name in ("chains2_lowest_sigma", "chains3_uncertainty_ratio0.5", "chains4_uniform_ratio0.25"):
    cfg = sudoku_budget.method_config(name, base)
    nfe = cfg.chains * sudoku_budget.planned_nfe(cfg, 81)  # every chain pays its own round 0
    assert 0.9 * paper <= nfe <= paper and cfg.rounds >= 1, name
  assert sudoku_budget.method_config("chains3_vote", base) == dataclasses.replace(
    base, rounds=6, chains=3
  )
  with pytest.raises(ValueError, match="unknown method"):
    sudoku_budget.method_config("chains1_uniform_ratio0.5", base)
  with pytest.raises(SystemExit, match="ipr_uniform_ratio1.5.*resampling_ratio must lie in"):
    sudoku_budget.main(
      ["--methods", "ipr_uniform_ratio1.5", "--num", "2", "--out", "/nonexistent/x"]
    )
  with pytest.raises(SystemExit, match="'ipr_ratio0.5': unknown method"):
    sudoku_budget.main(
      ["--methods", "sequential,ipr_ratio0.5", "--num", "2", "--out", "/nonexistent/x"]
    )
  assert sudoku_budget.method_config("ipr_steps20", base).ipr.steps_per_patch == 20
  fast = sudoku_budget.method_config("ipr_uncertainty_ratio0.25_steps5", base)  # more, cheaper
  assert (fast.ipr.steps_per_patch, fast.initial, fast.selector) == (5, base.initial, "uncertainty")
  assert fast.rounds > 2 * base.rounds - 5 and sudoku_budget.planned_nfe(fast, 81) <= paper
  sharp = sudoku_budget.method_config("ipr_uncertainty_ratio0.25_steps5_power2", base)
  assert sharp == dataclasses.replace(fast, selector_power=2.0)  # only the selector's power
  assert fast.selector_power == base.selector_power == 1.0
  # a falling ratio: more of the smaller rounds fit, the last round re-noises the final ratio
  falling = sudoku_budget.method_config("ipr_uncertainty_ratio0.25_to0.125_steps5", base)
  assert falling == dataclasses.replace(fast, final_ratio=0.125, rounds=falling.rounds)
  assert falling.rounds > fast.rounds and sudoku_budget.planned_nfe(falling, 81) <= paper
  more = dataclasses.replace(falling, rounds=falling.rounds + 1)
  assert sudoku_budget.planned_nfe(more, 81) > paper  # the most rounds that fit
  assert refine.round_ratios(falling)[-1] == pytest.approx(0.125)
  wide = sudoku_budget.method_config("ipr_uncertainty_ratio0.25_steps5_ov0.9", base)
  assert wide.ipr == dataclasses.replace(fast.ipr, overlap=0.9) and wide.initial == base.initial
  assert wide.rounds > fast.rounds and sudoku_budget.planned_nfe(wide, 81) <= paper
  together = sudoku_budget.method_config("ipr_uncertainty_ratio0.25_steps2_orderparallel", base)
  assert together.ipr.order == "parallel" and together.ipr.steps_per_patch == 2
  assert sudoku_budget.planned_nfe(dataclasses.replace(together, rounds=1), 81) == (
    sudoku_budget.planned_nfe(dataclasses.replace(together, rounds=0), 81) + 2
  )  # every re-noised cell at once: a round is its 2 steps
  with pytest.raises(ValueError, match="order must be one of"):
    sudoku_budget.method_config("ipr_uniform_ratio0.25_orderspiral", base)
  with pytest.raises(ValueError, match="overlap must lie in"):
    sudoku_budget.method_config("ipr_uniform_ratio0.25_steps1_ov1.5", base)
  for bad in ("ipr_uniform_ratio0.25_power2", "ipr_uncertainty_ratio0.25_power0"):
    with pytest.raises(ValueError, match="_power<p> needs the uncertainty selector"):
      sudoku_budget.method_config(bad, base)
  assert sudoku_budget.sampler_suffix("learned_range", None, 1.0) == ""
  assert sudoku_budget.sampler_suffix("fixed_small", 0.25, 0.7) == "@fixed_small,alpha0.25,T0.7"
  assert sudoku_budget.sampler_suffix("learned_range", None, 0.5) == "@learned_range,T0.5"
  assert sudoku_budget.sampler_flags(0.25, 0.7) == " --alpha 0.25 --temperature 0.7"


def test_budget_plot_draws_curves_of_any_sampler_settings(tmp_path, monkeypatch):
  """Curves run with another alpha or temperature go on their reverse std's panel under a name
  that says so (a study of only such curves once drew no panel and crashed after its run)."""
  import matplotlib.pyplot

  from experiments.studies import sudoku_budget

  assert sudoku_budget.panel_of("ipr_x") == ("", "ipr_x")
  assert sudoku_budget.panel_of("ipr_x@learned_range,T0.7") == ("", "ipr_x (T0.7)")
  assert sudoku_budget.panel_of("ipr_x@fixed_small,alpha0,T0.5") == (
    "fixed_small",
    "ipr_x (alpha0,T0.5)",
  )
  figures = []
  monkeypatch.setattr(matplotlib.pyplot, "close", figures.append)  # keep the figure to read
  curve = {"nfe": [243, 600], "valid": [0.1, 0.5]}
  results = {
    "curves": {"ipr_x@learned_range,alpha0": curve, "ipr_x@fixed_small,T0.7": curve},
    "model": "m",
    "num": 2,
    "split": "hard",
    "paper_nfe": 600,
  }
  assert os.path.exists(sudoku_budget.plot(results, str(tmp_path / "p.png")))
  (fig,) = figures
  labels = [[line.get_label() for line in ax.lines] for ax in fig.axes]
  assert labels[0][0] == "ipr_x (alpha0)" and labels[1][0] == "ipr_x (T0.7)"


@pytest.mark.skipif(
  "mnist_sudoku_latent" not in pretrained.available(), reason="shipped model not present"
)
def test_warm_start_from_a_latent_model_takes_its_codec(tmp_path):
  """train.init_from = a latent model: the codec stage copies that model's codec (its denoiser's
  weights only mean something over those latents) instead of training one, reuses the copy on
  resume, and refuses a pixel-space model or another codec architecture by name."""
  from experiments import codec
  from experiments.configs import mnist_sudoku

  config = mnist_sudoku.get_config("latent_cpu")
  config.train.init_from = "mnist_sudoku_latent"
  coder, params = codec.train(translate.codec_stage(config), str(tmp_path))
  _, _, want = pretrained.load_codec("mnist_sudoku_latent")
  assert _same(params, want)
  stored = json.load(open(tmp_path / "codec" / "manifest.json"))["codec"]
  assert stored["inherited_from"] == "mnist_sudoku_latent" and stored["board_ceiling"] == 1.0
  assert _same(codec.train(translate.codec_stage(config), str(tmp_path))[1], want)  # reused
  fresh = mnist_sudoku.get_config("latent_cpu")
  with pytest.raises(ValueError, match="taken from 'mnist_sudoku_latent'"):
    codec.train(
      translate.codec_stage(fresh), str(tmp_path)
    )  # a config that trains its own codec is not given this one
  config.model.codec.latent_dim = 8
  with pytest.raises(ValueError, match="the config asks for"):
    codec.train(translate.codec_stage(config), str(tmp_path / "d8"))
  config.train.init_from = "sudoku_symbolic"
  with pytest.raises(ValueError, match="has no codec"):
    codec.train(translate.codec_stage(config), str(tmp_path / "pixel"))


def test_latent_image_sudoku_pipeline(tmp_path):
  """latent_smoke: --mode train trains the codec stage (Orbax, exact resume, reused once
  trained) then the denoiser over 9x9 latents; refine writes the usual files; the latent
  training stream equals encoding the image stream's boards (encode is per region)."""
  from experiments import codec
  from experiments.configs import mnist_sudoku

  config = mnist_sudoku.get_config("latent_smoke")
  with pytest.raises(ValueError, match="latent config"):
    translate.translate(config)  # a latent task needs its codec
  with pytest.raises(checkpoints.CheckpointError, match="no trained codec"):
    evaluate.run(config, str(tmp_path / "empty"), "refine")
  # the codec stage resumes exactly: killed after its checkpoint at step 2 (whole autoencoder),
  # resumed and killed again at step 5 (the decoder phase, steps 4-5), then resumed to the end
  part = tmp_path / "part"
  assert codec.train(translate.codec_stage(config), str(part), stop_at_step=2) is None
  assert codec.train(translate.codec_stage(config), str(part), stop_at_step=5) is None
  resumed = codec.train(translate.codec_stage(config), str(part))
  train.train(config, str(tmp_path))  # codec stage from scratch, then the denoiser
  coder, params = codec.load(translate.codec_stage(config), str(tmp_path))
  assert _same(resumed[1], params)
  other = mnist_sudoku.get_config("latent_smoke")
  other.model.codec.latent_noise = 0.5
  with pytest.raises(ValueError, match="holds a codec"):  # another codec config is not reused
    codec.train(translate.codec_stage(other), str(tmp_path))
  report = json.load(open(tmp_path / "codec" / "manifest.json"))["codec"]
  assert report["accuracy_original"] > 0.9 and report["bank_accuracy_original"] == 1.0
  assert 0.0 <= report["board_ceiling"] <= 1.0 and report["decoder_steps"] == 2
  run = translate.translate(config, codec=(coder, params))
  assert (run.model.height, run.model.channels, run.model.patch) == (9, 16, 1)
  stream = run.task.train_stream(config.seed, 2)
  pixel = tasks.sudoku._ImageSudokuStream(config.seed, 2, config.data.pool_size, "sklearn", None)
  np.testing.assert_allclose(
    stream.batch(3)["x"], coder.encode(params, pixel.batch(3)["x"]), atol=1e-4
  )
  train.train(config, str(tmp_path))  # reuses the codec, resumes the denoiser: nothing to do
  results = evaluate.run(config, str(tmp_path), "refine")
  saved = json.load(open(tmp_path / "results.json"))
  check_schema(saved, config.refine.rounds)
  assert len(saved["metrics"]["hard"]["ipr_uniform"]["valid"]) == 3
  assert all(os.path.exists(p) for p in results["plots"])
  assert saved["doubt"] == "model"  # "recommended" without a shipped model: the model's sigma
  # eval.doubt typicality: a mixture fitted here to the codec's training cells; only sigma moves
  config.eval.doubt = "typicality"
  run = translate.translate(config, codec=(coder, params))
  apply, dparams, _ = evaluate.load_params(run, str(tmp_path))
  typical, tparams, doubt = evaluate.with_doubt(config, run, str(tmp_path), apply, dparams)
  assert doubt == "typicality" and tparams["mixture"]["means"].shape == (
    codec.MIXTURE_COMPONENTS,
    16,
  )
  z, t = jnp.asarray(stream.batch(0)["x"]), jnp.full((2, 81), 0.5)
  out, plain = typical(tparams, z, t), apply(dparams, z, t)
  np.testing.assert_array_equal(out.velocity, plain.velocity)
  assert bool(jnp.all(out.sigma_region >= 0)) and not np.allclose(
    out.sigma_region, plain.sigma_region
  )
  pixel = mnist_sudoku.get_config("smoke")
  pixel.eval.doubt = "typicality"
  with pytest.raises(ValueError, match="pixel space"):
    evaluate.with_doubt(pixel, translate.translate(pixel), str(tmp_path), apply, dparams)
  with pytest.raises(ValueError, match="eval.doubt must be one of"):
    pixel.eval.doubt = "oracle"
    translate.translate(pixel)


def test_unique_levels_run_their_own_recommended_settings():
  """The shipped model's settings for the unique-solution levels (adaptive restarts: stop at the
  first restart the probe accepts) run through evaluate's refine path, via restarts.solve: one
  picked board per puzzle, each puzzle's NFE its own restarts' (a whole number of them); the SRM
  splits keep the default settings."""
  config = sudoku_symbolic.get_config("cpu")
  config.eval.update(splits=("minimal", "hard"), settings_from="sudoku_symbolic")
  run = translate.translate(config)
  hard = evaluate.recommended_for(run, "hard")
  assert hard.chains is None and hard.rounds == 16
  cfg = evaluate.recommended_for(run, "minimal")
  assert (cfg.rounds, cfg.pick) == (0, "probe") and cfg.chains > 9 and cfg.accept_below > 0
  assert evaluate.recommended_for(run, "deep") == cfg
  apply, params, _ = pretrained.load("sudoku_symbolic")
  items = run.task.test_items("minimal", 2)
  metrics, nfe, _ = evaluate.run_refine(
    apply, params, items, cfg, run.task, jax.random.key(0), batch=2
  )
  assert metrics["valid"].shape == (1, 2)
  per_restart = 3 * items.eligible.sum(axis=1) + cfg.probe_draws  # its plan, then the probe
  restarts = metrics["item_nfe"][0] / per_restart
  assert np.all(restarts == np.round(restarts)) and np.all(
    (1 <= restarts) & (restarts <= cfg.chains)
  )
  assert nfe.tolist() == [int(metrics["item_nfe"][0].max())]


def test_image_model_ships_its_medium_settings():
  """mnist_sudoku_latent_19k's medium settings (measured better there: one-step rounds at the
  fixed_small std) come out for medium, rescaled to the split's round budget and within the NFE
  of the paper's 15 medium rounds (at overlap 0.95, as hard's); hard gets the uncertainty
  rounds at the learned-range std with 1 step per cell at overlap 0.95 (2 evaluations a round),
  720 of them in the NFE of the paper's 30, both passes at temperature 0.7."""
  from experiments import codec
  from experiments.configs import mnist_sudoku
  from experiments.studies import sudoku_budget

  if "mnist_sudoku_latent_19k" not in pretrained.available():
    pytest.skip("shipped model not present")
  config = mnist_sudoku.get_config("latent_cpu_more")
  config.eval.update(
    splits=("hard", "medium"),
    pretrained="mnist_sudoku_latent_19k",
    settings_from="mnist_sudoku_latent_19k",
  )
  run = translate.translate(config, codec=codec.load(translate.codec_stage(config), "unused"))
  hard, medium = evaluate.recommended_for(run, "hard"), evaluate.recommended_for(run, "medium")
  assert (hard.rounds, hard.resampling_ratio, hard.ipr.variance) == (720, 0.25, "learned_range")
  assert hard.ipr.overlap == 0.95 and sudoku_budget.planned_nfe(hard, 81) == 1683
  assert (hard.selector, hard.ipr.steps_per_patch, hard.ipr.temperature) == ("uncertainty", 1, 0.7)
  assert hard.initial == dataclasses.replace(run.sampler, temperature=0.7)
  assert (medium.rounds, medium.resampling_ratio, medium.ipr.steps_per_patch) == (255, 0.25, 1)
  assert medium.ipr.overlap == 0.95
  assert (medium.initial.variance, medium.ipr.variance) == ("fixed_small", "fixed_small")
  # both splits order and select cells by the typicality of the clean estimates, by default
  assert run.plan.doubt == "recommended" and evaluate.resolved_doubt(run) == "typicality"
  apply, params, _ = pretrained.load("mnist_sudoku_latent_19k", doubt="recommended")
  assert set(params) == {"denoiser", "mixture"}

  paper = sudoku_budget.paper_config(run)  # no more NFE than the paper's 30 rounds
  assert 0.9 * sudoku_budget.planned_nfe(paper, 81) <= sudoku_budget.planned_nfe(hard, 81)
  assert sudoku_budget.planned_nfe(hard, 81) <= sudoku_budget.planned_nfe(paper, 81)
  paper_medium = dataclasses.replace(paper, rounds=run.split_rounds("medium"))  # its 15 rounds
  unknown = 54  # a medium board's unknown cells
  assert sudoku_budget.planned_nfe(medium, unknown) == 672
  assert sudoku_budget.planned_nfe(paper_medium, unknown) == 672


def test_latent_geometry_oracles():
  """class_share is the R^2 of a least-squares fit of z on the one-hot class (an independent
  computation); far-apart clusters read ~1 and are classified exactly, shuffled labels read ~0;
  the shipped offline codec's banks are measured without the MNIST files; bad input is named."""
  from experiments.studies import latent_geometry as geo

  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(10), 200)
  centres = rng.normal(size=(10, 4)) * 3.0
  z = centres[labels] + rng.normal(size=(2000, 4))
  g = geo.geometry(z, labels)
  onehot = np.eye(10)[labels]
  fit = onehot @ np.linalg.lstsq(onehot, z, rcond=None)[0]
  r2 = 1 - ((z - fit) ** 2).sum() / ((z - z.mean(0)) ** 2).sum()
  assert abs(g["class_share"] - r2) < 1e-9 and g["class_share"] > 0.75
  assert g["num"] == 2000 and g["dim"] == 4 and g["nearest_mean_accuracy"] > 0.8
  shuffled = geo.geometry(z, rng.permutation(labels))
  assert shuffled["class_share"] < 0.02 and shuffled["nearest_mean_accuracy"] < 0.3
  far = geo.geometry(np.eye(10)[labels] * 100 + rng.normal(size=(2000, 10)), labels)
  assert far["nearest_mean_accuracy"] == 1.0 and far["separation"] > 100
  with pytest.raises(ValueError, match="at least two classes"):
    geo.geometry(z, np.zeros(2000, int))
  with pytest.raises(ValueError, match="z \\[N, d\\]"):
    geo.geometry(z[:, 0], labels)

  out = geo.main(["--models", "mnist_sudoku_latent_19k"])["mnist_sudoku_latent_19k"]
  assert out["train"]["num"] == 1000 and out["test"]["num"] == 250
  assert 0.3 < out["train"]["class_share"] < 0.9  # the style takes the rest
  assert out["test"]["nearest_mean_accuracy"] > 0.8
  with pytest.raises(SystemExit, match="not a latent model"):
    geo.main(["--models", "sudoku_symbolic"])
  means = np.zeros((10, 2))
  means[1:, 0] = np.arange(1, 10)  # digit k sits at (k, 0); class 0 is never read
  z = np.asarray([[0.2, 0.0], [4.4, 1.0], [8.6, -1.0]]).reshape(1, 3, 1, 2)
  assert geo.nearest_digits(z, means).ravel().tolist() == [1, 4, 9]
  means = geo.class_means(*geo.bank_latents("mnist_sudoku_latent_19k")["train"])
  r = geo.readings("mnist_sudoku_latent_19k", 2, means)  # raises if it reads unlike refine's metric
  assert r["boards"] == 2 and 0.8 < r["cell_agreement_given"] <= 1.0
  assert 0.0 <= r["valid_latent"] <= 1.0 and 0.0 <= r["cell_agreement_generated"] <= 1.0


def test_budget_curves_round_axis(tmp_path, monkeypatch):
  """A curve is drawn at its scored rounds: results["scored"], or in older files (before that
  key) results["rounds"] where a curve has one value each (a quickstart's every k-th), else
  0..n (a split's or a longer recommended curve's own number of rounds)."""
  from experiments import plots

  figures = []
  monkeypatch.setattr(plots.plt, "close", figures.append)  # keep the figure to read it
  results = {
    "benchmark": "mnist_sudoku",
    "variant": "quickstart",
    "num_samples": 4,
    "rounds": [0, 3, 6, 7],
    "nfe": {"hard": {"ipr": [243, 15, 15, 5], "recommended": [243] + [5] * 9, "one": [300]}},
    "metrics": {
      "hard": {
        "ipr": {"valid": [0.0, 0.25, 0.5, 0.5]},
        "recommended": {"valid": [0.1 * i for i in range(10)]},
        "one": {"valid": [0.25]},
      }
    },
  }
  (path,) = plots.budget_curves(results, "valid", str(tmp_path))
  assert os.path.exists(path)
  by_round = figures[0].axes[0].lines
  assert list(by_round[0].get_xdata()) == [0, 3, 6, 7]
  assert list(by_round[1].get_xdata()) == list(range(10))
  by_nfe = figures[0].axes[1].lines
  assert list(by_nfe[0].get_xdata()) == [243, 258, 273, 278]
  # files with "scored" (eval.score_every): each curve at its own rounds
  results["rounds"] = list(range(8))
  results["scored"] = {"hard": {"ipr": [0, 3, 6, 7], "recommended": list(range(0, 19, 2))}}
  plots.budget_curves(results, "valid", str(tmp_path))
  by_round = figures[1].axes[0].lines
  assert list(by_round[0].get_xdata()) == [0, 3, 6, 7]
  assert list(by_round[1].get_xdata()) == list(range(0, 19, 2))


@pytest.mark.skipif(
  "mnist_sudoku_latent_19k" not in pretrained.available(), reason="shipped model not present"
)
def test_latent_strip_reads_the_shown_rounds_only(tmp_path, monkeypatch):
  """The latent strip decodes and reads only the rounds it shows (a long history of 28x28
  boards at once ran out of memory) and titles each column with its round."""
  from experiments import plots, shipped

  figures = []
  monkeypatch.setattr(plots.plt, "close", figures.append)
  _, _, _, run = shipped.open_model("mnist_sudoku", workdir="unused")
  items = run.task.test_items("hard", 2)
  rounds = 6
  hist = np.repeat(items.x[None], rounds, axis=0)
  hist[[2, 4]] = np.nan  # rounds not shown: decoding them would raise under debug_nans
  labels = {"givens": ~items.eligible}
  with jax.debug_nans(True):
    run.task.strip(hist, labels, str(tmp_path / "strip.png"), [0, 1, 3, 5])
    with pytest.raises(FloatingPointError):  # the check bites: a shown NaN round is decoded
      run.task.strip(hist, labels, str(tmp_path / "strip.png"), [0, 2])
  axes = figures[0].axes
  titles = [ax.get_title().split(":")[0] for ax in axes[:4]]
  assert titles == ["round 0", "round 1", "round 3", "round 5"]
  assert os.path.exists(tmp_path / "strip.png")
  with pytest.raises(ValueError, match="round names"):
    plots.sudoku_strip(hist[:2], labels["givens"], str(tmp_path / "x.png"), [0, 1], round_names=[0])


@pytest.mark.skipif(
  "mnist_sudoku_latent_19k" not in pretrained.available(), reason="shipped model not present"
)
def test_scoring_cost_study_times_each_k_and_checks_its_figures(tmp_path):
  """The study times k = 1 and k > 1 side by side after checking their figures agree; --every
  must start with the baseline."""
  from experiments.studies import scoring_cost

  out = str(tmp_path / "cost.json")
  rec = scoring_cost.main(
    ["--num", "2", "--rounds", "3", "--every", "1,2", "--repeats", "1", "--out", out]
  )
  assert set(rec["best_s"]) == {"1", "2"} and rec["speedup"]["1"] == 1.0
  assert json.load(open(out))["nfe"] == rec["nfe"] > 0
  with pytest.raises(SystemExit, match="must start with 1"):
    scoring_cost.main(["--every", "3,1", "--out", out])


def test_ship_mixture_fits_a_shipped_latent_models_mixture(tmp_path):
  """tools.ship_mixture on a copy of the shipped offline latent model: the manifest entry, the
  file's hash, and the same mixture as experiments.codec.mixture of its codec (a deterministic
  fit); a pixel-space model is refused."""
  import shutil

  from experiments import codec
  from experiments.tools import ship_mixture

  name = "mnist_sudoku_latent_19k"
  if name not in pretrained.available():
    pytest.skip("shipped model not present")
  shutil.copytree(os.path.join(pretrained.ASSETS, name), tmp_path / name)
  os.remove(tmp_path / name / pretrained.TYPICALITY_FILE)
  entry = ship_mixture.ship(name, root=str(tmp_path))
  assert entry["components"] == codec.MIXTURE_COMPONENTS and entry["dim"] == 16
  assert entry["command"] == f"python -m experiments.tools.ship_mixture --model {name}"
  got = pretrained.load_mixture(name, str(tmp_path))
  want = pretrained.load_mixture(name)  # the shipped one: the same fit
  for k in got:
    np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-4)
  shutil.copytree(os.path.join(pretrained.ASSETS, "sudoku_symbolic_cpu"), tmp_path / "pix")
  with pytest.raises(SystemExit, match="no codec"):
    ship_mixture.ship("pix", root=str(tmp_path))
