"""Benchmark adapters: config -> denoiser, training stream, test items, metrics, pictures.

The library never reads a ConfigDict; this module turns one into the library's dataclasses.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import numpy as np

from ipr_jax import denoisers, graphs, regions
from ipr_jax.data import counting_polygons, digits, even_pixels, image_sudoku, sudoku
from ipr_jax.evaluation import counting_polygons as cp_eval
from ipr_jax.evaluation import digit_classifier
from ipr_jax.evaluation import even_pixels as ep_eval
from ipr_jax.evaluation import sudoku as sudoku_eval


@dataclasses.dataclass
class TestItems:
  x: np.ndarray          # f32[N, H, W, C] ground truth (givens read from it)
  eligible: np.ndarray   # bool[N, R] regions to generate / refine
  labels: dict           # extra per-item arrays for plots


@dataclasses.dataclass
class Task:
  name: str
  grid: regions.RegionGrid
  model_config: object
  train_stream: Callable[[int, int], object]     # (seed, batch) -> object with .batch(step)
  test_items: Callable[..., TestItems]           # (split, num, validation=False) -> items
  metric_fn: Callable                            # f32[B, H, W, C] -> dict of f32[B]
  headline: str                                  # metric name reported in tables
  read_digits: Callable | None = None            # image Sudoku: boards -> i32[..., 9, 9] as read


def _sudoku_symbolic(config) -> Task:
  m = config.model
  row, col, box = graphs.sudoku_position_ids()
  graph = graphs.sudoku_peers() if m.graph == "sudoku_peers" else graphs.full(81)
  model = denoisers.TransformerConfig(
      9, 9, 9, 1, dim=m.dim, depth=m.depth, heads=m.heads, mlp_ratio=m.mlp_ratio,
      dropout=m.dropout, dtype=compute_dtype(m), position_ids=(tuple(row), tuple(col), tuple(box)),
      attention_graph=tuple(map(tuple, graph)))

  def test_items(split, num, validation=False):
    get = sudoku.validation_set if validation else sudoku.test_set
    boards, givens = get(split, num)
    return TestItems(sudoku.to_symbolic(boards), ~givens, {"boards": boards, "givens": givens})

  return Task("sudoku_symbolic", regions.make_grid(9, 9, 1), model,
              lambda seed, batch: sudoku.TrainStream(seed, batch, config.train.get("pool_size", 5000)), test_items,
              sudoku_eval.symbolic_metrics, "valid")


class _ImageSudokuStream:
  """Image boards composed from the train digit bank, with random givens (per-step seeded)."""

  def __init__(self, seed, batch_size, pool_size, source, idx_dir):
    self.boards = sudoku.TrainStream(seed, batch_size, pool_size)
    self.bank = image_sudoku.banks(source, idx_dir)["train"]
    self.seed = seed

  def batch(self, step):
    b = self.boards.batch(step)
    boards = np.argmax(b["x"], axis=-1) + 1
    rng = np.random.default_rng([image_sudoku.COMPOSE_SEED, self.seed, step])
    imgs = np.stack([digits.compose_board(bd, self.bank, rng) for bd in boards])
    return {"x": digits.to_model(imgs)[..., None], "mask": b["mask"]}


def _mnist_sudoku(config) -> Task:
  m, d = config.model, config.data
  cls_apply, cls_params, man = digit_classifier.load("sklearn" if d.source == "sklearn" else "idx_dir")
  cell = man["cell"]
  row, col, box = graphs.sudoku_position_ids()
  model = _image_model(m, 9 * cell, 9 * cell, 1, cell,
                       position_ids=(tuple(row), tuple(col), tuple(box)),
                       attention_graph=tuple(map(tuple, graphs.sudoku_peers())))

  def test_items(split, num, validation=False):
    get = sudoku.validation_set if validation else sudoku.test_set
    boards, givens = get(split, num)
    bank = image_sudoku.banks(d.source, d.idx_dir)["test"]
    stream = "validation" if validation else "test"
    imgs = np.stack([image_sudoku.compose_item(b, bank, i, stream) for i, b in enumerate(boards)])
    return TestItems(digits.to_model(imgs)[..., None], ~givens, {"boards": boards, "givens": givens})

  # the evaluator's classifier params are constants of the metric (not trained, not swept)
  metric = functools.partial(jax.jit(sudoku_eval.image_metrics, static_argnums=(0, 3)), cls_apply,
                             cls_params, cell=cell)
  return Task("mnist_sudoku", regions.make_grid(9 * cell, 9 * cell, cell), model,
              lambda seed, batch: _ImageSudokuStream(seed, batch, config.train.get("pool_size", 5000),
                                                     d.source, d.idx_dir),
              test_items, metric, "valid",
              functools.partial(jax.jit(digit_classifier.board_digits, static_argnums=(0, 3)),
                                cls_apply, cls_params, cell=cell))


class _EvenPixelsStream:

  def __init__(self, seed, batch_size):
    self.seed, self.batch_size = seed, batch_size

  def batch(self, step):
    rng = np.random.default_rng([even_pixels.TRAIN_SEED, self.seed, step])
    imgs = np.stack([even_pixels.generate(rng) for _ in range(self.batch_size)])
    return {"x": even_pixels.to_model(imgs)}


def _even_pixels(config) -> Task:
  m = config.model
  model = _image_model(m, 32, 32, 3, 4)

  def test_items(split, num, validation=False):
    offset = 100_000 if validation else 0
    imgs = np.stack([even_pixels.item(offset + i) for i in range(num)])
    return TestItems(even_pixels.to_model(imgs), np.ones((num, 64), bool), {})

  return Task("even_pixels", regions.make_grid(32, 32, 4), model,
              lambda seed, batch: _EvenPixelsStream(seed, batch), test_items,
              ep_eval.metrics, "is_color_count_even")


_UNET_KEYS = ("widths", "attention", "num_blocks", "groups", "dropout", "time_dim", "head_channels")
_TRANSFORMER_KEYS = ("dim", "depth", "heads", "mlp_ratio", "dropout")


def compute_dtype(m) -> str:
  """model.dtype: float32, bfloat16, or auto (bfloat16 on GPU/TPU, float32 on CPU)."""
  name = m.get("dtype", "float32")
  if name == "auto":
    return "bfloat16" if jax.default_backend() in ("gpu", "tpu") else "float32"
  return name


def _image_model(m, height, width, channels, patch, **transformer_extra):
  """The denoiser config of an image benchmark: `unet` (spec 6.1) or `transformer` (with the
  benchmark's extra fields, e.g. the Sudoku peer graph)."""
  if m.kind == "unet":
    return denoisers.make_config("unet", height=height, width=width, channels=channels,
                                 patch=patch, dtype=compute_dtype(m),
                                 **{k: m[k] for k in _UNET_KEYS if k in m})
  if m.kind == "transformer":
    return denoisers.make_config("transformer", height=height, width=width, channels=channels,
                                 patch=patch, dtype=compute_dtype(m),
                                 **{k: m[k] for k in _TRANSFORMER_KEYS},
                                 **transformer_extra)
  raise ValueError(f"model.kind must be one of {tuple(denoisers.KINDS)}, got {m.kind!r}")


class _CountingPolygonsStream:

  def __init__(self, seed, batch_size, backgrounds):
    self.seed, self.batch_size, self.backgrounds = seed, batch_size, backgrounds

  def batch(self, step):
    first = step * self.batch_size
    imgs = np.stack([counting_polygons.item(first + i, "train", backgrounds=self.backgrounds,
                                            seed=self.seed)[0] for i in range(self.batch_size)])
    return {"x": counting_polygons.to_model(imgs)}


def _counting_polygons(config) -> Task:
  d = config.data
  backgrounds = counting_polygons.Backgrounds(d.background_dir) if d.background_dir else None
  cls_apply, cls_params, _ = cp_eval.load(d.classifier)
  size, patch = counting_polygons.SIZE, 8
  regions_per_side = size // patch

  def test_items(split, num, validation=False):
    items = [counting_polygons.item(i, "validation" if validation else "test",
                                    backgrounds=backgrounds) for i in range(num)]
    imgs = np.stack([im for im, _ in items])
    return TestItems(counting_polygons.to_model(imgs), np.ones((num, regions_per_side ** 2), bool),
                     {"num_polygons": np.array([l["num_polygons"] for _, l in items])})

  metric = functools.partial(jax.jit(cp_eval.metrics, static_argnums=0), cls_apply, cls_params)
  return Task("counting_polygons", regions.make_grid(size, size, patch),
              _image_model(config.model, size, size, 3, patch),
              lambda seed, batch: _CountingPolygonsStream(seed, batch, backgrounds), test_items,
              metric, "numbers_match_objects")


TASKS = {"sudoku_symbolic": _sudoku_symbolic, "mnist_sudoku": _mnist_sudoku,
         "even_pixels": _even_pixels, "counting_polygons": _counting_polygons}


def make_task(config) -> Task:
  if config.benchmark not in TASKS:
    raise ValueError(f"benchmark must be one of {tuple(TASKS)}, got {config.benchmark!r}")
  return TASKS[config.benchmark](config)
