"""Extending without editing library files: a selector and a benchmark added through the public
registries (as README's "Extending" section shows), and the config translation's key checks."""

import dataclasses
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import evaluate, tasks, train, translate
from experiments.configs import counting_polygons, even_pixels, sudoku_symbolic
from ipr_jax import refine, regions, selectors, structs
from tests.tiny import make_tiny


def _lowest_index_first(key, sigma, config):
  """A deterministic toy selector: the eligible regions with the lowest indices."""
  del key, config
  return -jnp.arange(sigma.shape[0], dtype=jnp.float32)


selectors.register("lowest_index_first", _lowest_index_first)


def test_toy_selector_through_the_public_registry_drives_refine():
  grid = regions.make_grid(4, 4, 1)
  apply = make_tiny(grid)
  params = {"a": jnp.float32(0.7), "sigma": jnp.linspace(0.2, 1.0, 16)}
  eligible = np.ones((2, 16), bool)
  eligible[0, :3] = False  # givens: the selector must skip them
  cfg = refine.RefineConfig(
    rounds=3,
    resampling_ratio=0.25,
    selector="lowest_index_first",
    initial=refine.RefineConfig.initial,
    ipr=refine.RefineConfig.initial,
  )
  res = refine.refine(
    apply, params, jax.random.key(0), jnp.zeros((2, 4, 4, 1)), jnp.asarray(eligible), cfg
  )
  sel = np.asarray(res.selected)  # bool[rounds, B, R]
  want = np.zeros((2, 16), bool)
  want[0, 3:6] = True  # m = 13 * 0.25 -> 3, after the givens
  want[1, 0:4] = True  # m = 16 * 0.25 = 4
  np.testing.assert_array_equal(sel, np.broadcast_to(want, sel.shape))
  assert "lowest_index_first" in selectors.names()
  with pytest.raises(ValueError, match="already registered"):
    selectors.register("lowest_index_first", lambda key, sigma, config: sigma)
  with pytest.raises(ValueError, match="selector must be one of"):
    refine.RefineConfig(selector="no_such_selector")


# ---- a toy benchmark: 8x8 grey images, 2x2 patches, "the top half is darker than the bottom" ----


class _ToyStream:
  def __init__(self, seed, batch_size):
    self.seed, self.batch_size = seed, batch_size

  def batch(self, step):
    rng = np.random.default_rng([self.seed, step])
    return {"x": _toy_images(rng, self.batch_size)}


def _toy_images(rng, n):
  x = rng.uniform(-1.0, 1.0, (n, 8, 8, 1)).astype(np.float32) * 0.2
  x[:, :4] -= 0.6
  x[:, 4:] += 0.6
  return x


def _toy_metric(x):
  return {
    "darker_top": (x[:, :4].mean(axis=(1, 2, 3)) < x[:, 4:].mean(axis=(1, 2, 3))).astype(
      jnp.float32
    )
  }


@tasks.register("toy_halves", data_keys=("brightness",))
def _toy_halves(config):
  def test_items(split, num, validation=False):
    x = _toy_images(np.random.default_rng(1 if validation else 2), num)
    return tasks.TestItems(x, np.ones((num, 16), bool), {})

  return tasks.Task(
    "toy_halves",
    regions.make_grid(8, 8, 2),
    dict(height=8, width=8, channels=1, patch=2),
    lambda seed, batch: _ToyStream(seed, batch),
    test_items,
    _toy_metric,
    "darker_top",
  )


def _toy_config():
  config = even_pixels.get_config("smoke")
  config.benchmark = "toy_halves"
  config.data = {"brightness": 0.6}
  return config


def test_toy_benchmark_trains_and_refines_through_the_experiment_modes(tmp_path):
  config = _toy_config()
  run = translate.translate(config)
  assert (run.model.height, run.model.patch, run.task.headline) == (8, 2, "darker_top")
  train.train(config, str(tmp_path))
  results = evaluate.run(config, str(tmp_path), "refine")
  saved = json.load(open(tmp_path / "results.json"))
  assert saved["benchmark"] == "toy_halves" and saved["headline"] == "darker_top"
  assert len(saved["metrics"]["test"]["ipr_uniform"]["darker_top"]) == config.refine.rounds + 1
  assert all(os.path.exists(p) for p in results["plots"])
  assert os.path.exists(tmp_path / "strip_test.png")  # the default image strip


# (config module, dotted key, bad value, what the ValueError must say)
BAD_SETTINGS = [
  # a typo, then a key of mnist_sudoku that sudoku_symbolic does not read
  (
    sudoku_symbolic,
    "optim.learning_rat",
    1e-3,
    r"config.optim has key\(s\) \['learning_rat'\] that OptimConfig does not have; its "
    r"fields: \['b1', ",
  ),
  (sudoku_symbolic, "refine.ipr.stepz", 3, r"config.refine.ipr has key\(s\) \['stepz'\] that "),
  (sudoku_symbolic, "data.source", "sklearn", "config.data .sudoku_symbolic. has key"),
  (even_pixels, "model.graph", "full", "graph"),  # Sudoku's attention graph
  (even_pixels, "model.transformer.height", 16, "height"),  # geometry is the benchmark's
  (sudoku_symbolic, "model.kind", "unet", r"fixes denoiser field\(s\) \['attention_graph'"),
  (sudoku_symbolic, "model.kind", "mlp", r"model.kind must be one of \('transformer', 'unet'\)"),
  (sudoku_symbolic, "eval.selectors", ("uniform", "no_such_selector"), "selector must be one of"),
  (sudoku_symbolic, "refine.selector", "no_such_selector", "selector must be one of"),
  (sudoku_symbolic, "refine.initial.variance", "learned", "variance must be one of"),
  (sudoku_symbolic, "loss.reduction", "pixels", "loss reduction must be one of"),
  (sudoku_symbolic, "train.init_match", "everything", "train.init_match must be one of"),
  (sudoku_symbolic, "eval.checkpoint", "newest", "eval.checkpoint must be one of"),
  (sudoku_symbolic, "benchmark", "no_such_benchmark", "benchmark must be one of"),
  (
    counting_polygons,
    "model.patch",
    12,
    r"model.patch: patch=12 must divide the image size 128x128",
  ),
  (counting_polygons, "model.patch", 0, "model.patch: patch must be a positive integer, got 0"),
  (even_pixels, "model.patch", 8, r"config.model .even_pixels. has key"),  # fixed at 4 there
  # a transformer narrower than its region's values needs the z_t skip (docs/results/even_pixels.md)
  (
    even_pixels,
    "model.transformer.skip",
    False,
    r"dim=16 is below the 48 values .*set model.transformer.skip=True",
  ),
  (counting_polygons, "model.transformer.skip", False, r"dim=16 is below the 768 values"),
  # split names are the benchmark's (a typo in eval.rounds, a Sudoku split on an image set)
  (
    sudoku_symbolic,
    "eval.rounds",
    {"hrad": 3},
    r"eval.rounds names split 'hrad', which "
    r"sudoku_symbolic does not have; its splits: "
    r"\('hard', 'medium', 'easy', 'full', 'minimal', 'deep'\)",
  ),
  (even_pixels, "eval.splits", ("hard",), "eval.splits holds split 'hard', which even_pixels"),
]


def test_translate_rejects_unread_missing_and_foreign_keys():
  for module, dotted, value, match in BAD_SETTINGS:
    config = module.get_config("smoke")
    *path, key = dotted.split(".")
    section = config
    for name in path:
      section = section[name]
    section[key] = value
    with pytest.raises(ValueError, match=match):
      translate.translate(config)
  config = even_pixels.get_config("smoke")  # a pixel head is the other way past the narrow check
  config.model.transformer.update(skip=False, pixel_head=8)
  assert translate.translate(config).model.pixel_head == 8
  config = sudoku_symbolic.get_config("cpu")  # one split only: medium's budget is then unused
  config.eval.splits = ("hard",)
  assert "medium" in config.eval.rounds
  assert translate.translate(config).task.name == "sudoku_symbolic"
  config = sudoku_symbolic.get_config("smoke")  # a key a config leaves out takes the default
  del config.refine["selector_power"]
  assert translate.translate(config).refine.selector_power == refine.RefineConfig().selector_power


def test_translate_reads_every_key_into_the_library_configs():
  """Each section is its dataclass: every key set in the config is the Run's field, nested
  sampler sections included, and the round-0 sampler is refine.initial."""
  config = sudoku_symbolic.get_config("smoke")
  config.optim.update(ema_decay=0.97, weight_decay=0.02, b1=0.8, b2=0.99, decay_steps=0, eps=1e-7)
  config.loss.update(vlb_weight=0.5, sigma_weight=0.2, reduction="unknown")
  config.refine.update(resampling_ratio=0.5, noise_type="fixed", chains=2, final_ratio=0.1)
  config.refine.initial.update(temperature=0.9, alpha=0.3, variance="fixed_small")
  config.refine.ipr.update(steps_per_patch=4, overlap=0.5, variance="fixed_small")
  config.time_sampler.update(kind="board_beta", concentration=7.0, add_zeros=True, zeros_power=2.0)
  config.train.update(density_images=999, init_match="shapes")
  config.eval.update(selectors=("uncertainty",), strip_samples=1)
  run = translate.translate(config)
  for field, section in (
    ("optim", "optim"),
    ("loss", "loss"),
    ("refine", "refine"),
    ("time_sampler", "time_sampler"),
    ("loop", "train"),
    ("plan", "eval"),
  ):
    assert structs.to_dict(getattr(run, field)) == config[section].to_dict(), section
  assert run.sampler == run.refine.initial and run.refine.chains == 2
  assert run.selectors == ("uncertainty",) and run.model.dim == config.model.transformer.dim


def test_a_new_refine_field_reaches_the_command_line(monkeypatch):
  """Adding a knob to a library dataclass is one edit: the field. Here a subclass with a new
  field stands in for RefineConfig (as if the field were added in place); the base config
  builds config.refine from it, a --config flag sets it, and translate hands it to the Run."""
  from absl import flags
  from ml_collections import config_flags

  @dataclasses.dataclass(frozen=True)
  class PatientRefine(refine.RefineConfig):
    patience: int = 3  # the one edit

  monkeypatch.setattr(refine, "RefineConfig", PatientRefine)
  config = sudoku_symbolic.get_config("smoke")
  assert config.refine.patience == 3
  flag_values = flags.FlagValues()  # the command line of experiments.main
  config_flags.DEFINE_config_file("config", None, "", flag_values=flag_values, lock_config=True)
  argv = [
    "prog",
    "--config=experiments/configs/sudoku_symbolic.py:smoke",
    "--config.refine.patience=7",
    "--config.refine.chains=2",
  ]
  monkeypatch.setattr(sys, "argv", argv)  # config_flags reads its overrides from sys.argv
  flag_values(argv)
  run = translate.translate(flag_values.config)
  assert type(run.refine) is PatientRefine and (run.refine.patience, run.refine.chains) == (7, 2)
