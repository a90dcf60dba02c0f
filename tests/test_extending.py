"""Extending without editing library files: a selector and a benchmark added through the public
registries (as README's "Extending" section shows), and the config translation's key checks."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import evaluate, tasks, train, translate
from experiments.configs import counting_polygons, even_pixels, sudoku_symbolic
from ipr_jax import refine, regions, selectors
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
  (sudoku_symbolic, "train.learning_rat", 1e-3, r"config.train has key\(s\) \['learning_rat'\]"),
  (sudoku_symbolic, "data.source", "sklearn", "config.data .sudoku_symbolic. has key"),
  (even_pixels, "model.graph", "full", "graph"),  # Sudoku's attention graph
  (even_pixels, "model.transformer.height", 16, "height"),  # geometry is the benchmark's
  (sudoku_symbolic, "model.kind", "unet", "config.model.unet"),
  (sudoku_symbolic, "refine.selectors", ("uniform", "no_such_selector"), "selector must be one of"),
  (sudoku_symbolic, "sample.variance", "learned", "variance must be one of"),
  (sudoku_symbolic, "train.loss_reduction", "pixels", "loss reduction must be one of"),
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
    r"sudoku_symbolic does not have; its splits: \('hard', 'medium', 'easy', 'full'\)",
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
  config = sudoku_symbolic.get_config("smoke")
  del config.refine["overlap"]
  with pytest.raises(ValueError, match=r"config.refine lacks key\(s\) \['overlap'\]"):
    translate.translate(config)


def test_translate_reads_every_key_into_the_library_configs():
  config = sudoku_symbolic.get_config("smoke")
  config.train.update(
    ema_decay=0.97,
    weight_decay=0.02,
    b1=0.8,
    vlb_weight=0.5,
    sigma_weight=0.2,
    lr_schedule="constant",
    loss_reduction="unknown",
  )
  config.sample.update(temperature=0.9, alpha=0.3, variance="fixed_small")
  config.refine.update(resampling_ratio=0.5, noise_type="fixed", steps_per_patch=4, overlap=0.5)
  config.time_sampler.update(kind="board_beta", concentration=7.0, add_zeros=True, zeros_power=2.0)
  run = translate.translate(config)
  assert (run.optim.ema_decay, run.optim.weight_decay, run.optim.b1, run.optim.decay_steps) == (
    0.97,
    0.02,
    0.8,
    0,
  )
  assert (run.loss.vlb_weight, run.loss.sigma_weight, run.loss.reduction) == (0.5, 0.2, "unknown")
  assert (run.sampler.temperature, run.sampler.alpha, run.sampler.variance) == (
    0.9,
    0.3,
    "fixed_small",
  )
  assert run.refine.initial.variance == run.refine.ipr.variance == "fixed_small"
  assert (run.refine.resampling_ratio, run.refine.noise_type) == (0.5, "fixed")
  assert (run.refine.ipr.steps_per_patch, run.refine.ipr.overlap, run.refine.ipr.alpha) == (
    4,
    0.5,
    0.3,
  )
  assert (
    run.time_sampler.kind,
    run.time_sampler.concentration,
    run.time_sampler.add_zeros,
    run.time_sampler.zeros_power,
  ) == ("board_beta", 7.0, True, 2.0)
  assert run.model.dim == config.model.transformer.dim
  config.train.lr_schedule = "cosine"
  assert translate.translate(config).optim.decay_steps == config.train.steps
