"""Benchmarks: the one registry of what a benchmark brings (geometry, data, metric, pictures).

A benchmark is registered with the data and model keys it reads from the experiment config and
a builder `config -> Task`:

    @tasks.register("my_bench", data_keys=("size",))
    def my_bench(config):
      return tasks.Task(name="my_bench", grid=regions.make_grid(8, 8, 2), ...)

`experiments.translate` checks the config against those keys and builds everything else (the
denoiser from `model` and the task's `model_fields`, optimiser, sampler, refine).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from experiments import plots
from ipr_jax import graphs, latents, refine, registry, regions, tfds_builders
from ipr_jax.data import counting_polygons, digits, even_pixels, image_sudoku, pipeline, sudoku
from ipr_jax.evaluation import counting_polygons as cp_eval
from ipr_jax.evaluation import digit_classifier
from ipr_jax.evaluation import even_pixels as ep_eval
from ipr_jax.evaluation import sudoku as sudoku_eval


@dataclasses.dataclass
class TestItems:
  x: np.ndarray          # f32[N, H, W, C] ground truth (givens read from it)
  eligible: np.ndarray   # bool[N, R] regions to generate / refine
  labels: dict           # extra per-item arrays for plots (each with N leading)


@dataclasses.dataclass
class Task:
  """What a benchmark brings. `metric_fn(x f32[B, H, W, C]) -> {name: f32[B]}`, or with
  `metric_params` (an evaluator's weights) `metric_fn(metric_params, x)`: the convention of
  `ipr_jax.refine`, so the weights are an argument of the compiled refine, not constants."""
  name: str
  grid: regions.RegionGrid
  model_fields: dict                            # denoiser fields the benchmark fixes (geometry, ...)
  train_stream: Callable[[int, int], object]     # (seed, batch) -> object with .batch(step)
  test_items: Callable[..., TestItems]           # (split, num, validation=False) -> items
  metric_fn: Callable
  headline: str                                  # metric name reported in tables
  metric_params: object = None
  # (history f32[rounds+1, S, H, W, C], labels of those S items, path, rounds shown) -> path
  strip: Callable = None

  def __post_init__(self):
    self._jit_metric = jax.jit(functools.partial(refine.apply_metric, self.metric_fn))
    if self.strip is None:
      self.strip = self._image_strip

  def _image_strip(self, hist, labels, path, shown):
    """The default strip: the images, each titled with its headline verdict."""
    del labels
    per_round = np.stack([np.asarray(self.metrics(h)[self.headline]) for h in hist])
    return plots.image_strip(hist, path, shown, metrics={self.headline: per_round})

  def metrics(self, x) -> dict:
    """The metric of a batch, computed on the host's default device (jitted once)."""
    return self._jit_metric(self.metric_params, x)


class Benchmark(NamedTuple):
  build: Callable            # config -> Task
  data_keys: tuple           # keys of config.data it reads (all required)
  model_keys: tuple          # benchmark keys of config.model besides kind, dtype and the kinds
  splits: tuple              # named held-out splits (() = not checked before the task is built)


_BENCHMARKS = registry.Registry("benchmark")


def register(name: str, *, data_keys=(), model_keys=(), splits=()):
  """Decorator registering a builder `config -> Task` as benchmark `name` (once per name)."""
  def add(build):
    _BENCHMARKS.add(name, Benchmark(build, tuple(data_keys), tuple(model_keys), tuple(splits)))
    return build
  return add


names, get = _BENCHMARKS.names, _BENCHMARKS.get


def make_task(config, codec=None) -> Task:
  """The Task of `config`; `codec` = (Codec, params) of a latent config's per-region codec
  (`experiments.codec`), passed to the benchmarks that take one."""
  build = get(config.benchmark).build
  return build(config) if codec is None else build(config, codec=codec)


def tfds_test(builder_cls, config: str | None, num: int, data_dir: str | None, **kwargs) -> list:
  """The first `num` items of a benchmark's held-out test set, read from its TFDS builder
  (`ipr_jax.tfds_builders`: array_record, prepared once per config and size in `data_dir`,
  default TFDS's `$TFDS_DATA_DIR` or ~/tensorflow_datasets, then read with as_data_source)."""
  builder = builder_cls(config=config, num_train=0, num_test=num, data_dir=data_dir, **kwargs)
  builder.download_and_prepare()
  source = builder.as_data_source()["test"]
  return [source[i] for i in range(num)]


# ---- Sudoku (symbolic cells and handwritten digits) ----

def _sudoku_fields(graph: str) -> dict:
  """Row/column/box position ids and the attention graph (`sudoku_peers` or `full`)."""
  graphs_by_name = {"sudoku_peers": graphs.sudoku_peers, "full": lambda: graphs.full(81)}
  if graph not in graphs_by_name:
    raise ValueError(f"model.graph must be one of {tuple(graphs_by_name)}, got {graph!r}")
  row, col, box = graphs.sudoku_position_ids()
  return {"position_ids": (tuple(row), tuple(col), tuple(box)),
          "attention_graph": tuple(map(tuple, graphs_by_name[graph]()))}


def _sudoku_items(config_name: str, data, to_x):
  """Test items from the mnist_sudoku TFDS builder's `config_name` (board image, givens of the
  split); validation items (training-time model selection) drawn procedurally by `to_x`."""
  def test_items(split, num, validation=False):
    sudoku.split_range(split)  # ValueError naming the splits
    if validation:
      boards, givens = sudoku.validation_set(split, num)
      return TestItems(to_x(boards), ~givens, {"boards": boards, "givens": givens})
    rows = tfds_test(tfds_builders.MnistSudoku, config_name, num, data.tfds_dir,
                     **({"idx_dir": data.idx_dir} if config_name == "idx_dir" else {}))
    boards = np.stack([r["board"] for r in rows]).astype(np.int8)
    givens = (np.stack([r[f"givens_{split}"] for r in rows]).astype(bool)
              if split in ("hard", "medium", "easy")
              else np.stack([sudoku.test_givens(i, split) for i in range(num)]))
    x = pipeline.to_model(np.stack([r["image"] for r in rows]))
    return TestItems(x, ~givens, {"boards": boards, "givens": givens})
  return test_items


@register("sudoku_symbolic", data_keys=("pool_size", "tfds_dir"), model_keys=("graph",),
          splits=tuple(sudoku.SPLITS))
def _sudoku_symbolic(config) -> Task:
  def strip(hist, labels, path, shown):
    return plots.sudoku_strip(hist, labels["givens"], path, shown,
                              row_labels=labels.get("row_labels"))

  return Task("sudoku_symbolic", regions.make_grid(9, 9, 1),
              dict(height=9, width=9, channels=9, patch=1, **_sudoku_fields(config.model.graph)),
              lambda seed, batch: sudoku.TrainStream(seed, batch, config.data.pool_size),
              _sudoku_items("symbolic", config.data, sudoku.to_symbolic),
              sudoku_eval.symbolic_metrics, "valid", strip=strip)


class _ImageSudokuStream:
  """Image boards composed from the train digit bank, with random givens (per-step seeded)."""

  def __init__(self, seed, batch_size, pool_size, source, idx_dir):
    self.boards = sudoku.TrainStream(seed, batch_size, pool_size)
    self.bank = digit_classifier.banks(source, idx_dir)["train"]
    self.seed = seed

  def batch(self, step):
    b = self.boards.batch(step)
    boards = np.argmax(b["x"], axis=-1) + 1
    rng = np.random.default_rng([image_sudoku.COMPOSE_SEED, self.seed, step])
    imgs = np.stack([digits.compose_board(bd, self.bank, rng) for bd in boards])
    return {"x": digits.to_model(imgs)[..., None], "mask": b["mask"]}


class _LatentSudokuStream(_ImageSudokuStream):
  """The image stream's boards and digit instances (same rng), as per-cell latents: the train
  bank is encoded once, so each batch is a lookup (encode is per region, so this equals
  encoding the composed board image)."""

  def __init__(self, seed, batch_size, pool_size, source, idx_dir, encode_bank):
    super().__init__(seed, batch_size, pool_size, source, idx_dir)
    self.latent_bank = encode_bank(self.bank)

  def batch(self, step):
    b = self.boards.batch(step)
    boards = np.argmax(b["x"], axis=-1) + 1
    rng = np.random.default_rng([image_sudoku.COMPOSE_SEED, self.seed, step])
    z = np.stack([digits.board_cells(bd, self.latent_bank, rng).reshape(9, 9, -1)
                  for bd in boards])
    return {"x": z, "mask": b["mask"]}


@register("mnist_sudoku", data_keys=("source", "idx_dir", "pool_size", "tfds_dir"),
          model_keys=("graph", "codec"), splits=tuple(sudoku.SPLITS))
def _mnist_sudoku(config, codec=None) -> Task:
  """Pixel space (model.codec.latent_dim 0), or with `codec` = (Codec, params) the 9x9 grid of
  per-cell latents: the denoiser and IPR run over latents, the metric decodes inside refine."""
  d = config.data
  cls_apply, cls_params, man = digit_classifier.load("sklearn" if d.source == "sklearn" else "idx_dir")
  cell = man["cell"]
  latent = bool(config.model.codec.latent_dim)
  if latent and codec is None:
    raise ValueError("model.codec.latent_dim > 0 makes this a latent config: it needs its "
                     "trained codec (--mode train trains it first; eval.pretrained ships one)")
  to_x = lambda imgs: digits.to_model(imgs)[..., None]
  if latent:
    coder, codec_params = codec
    if coder.config.patch != cell or coder.config.latent_dim != config.model.codec.latent_dim:
      raise ValueError(f"the codec codes {coder.config.patch}-pixel cells into "
                       f"{coder.config.latent_dim} numbers; this config has {cell}-pixel cells "
                       f"and model.codec.latent_dim {config.model.codec.latent_dim}")
    encode = jax.jit(coder.encode)
    to_x = lambda imgs: np.concatenate([np.asarray(encode(codec_params, digits.to_model(
        imgs[i:i + 256])[..., None])) for i in range(0, len(imgs), 256)])

  def validation_x(boards):
    bank = digit_classifier.banks(d.source, d.idx_dir)["test"]
    return to_x(np.stack([image_sudoku.compose_item(b, bank, i, "validation")
                          for i, b in enumerate(boards)]))

  read = jax.jit(functools.partial(digit_classifier.board_digits, cls_apply, cell=cell))
  pixel_metric = functools.partial(sudoku_eval.image_metrics, cls_apply, cell=cell)
  items = _sudoku_items(d.source, d, validation_x)
  if not latent:
    def strip(hist, labels, path, shown):  # the classifier's reading marks the bad cells
      return plots.sudoku_strip(hist, labels["givens"], path, shown,
                                digits=np.asarray(read(cls_params, hist)),
                                row_labels=labels.get("row_labels"))

    fields = dict(height=9 * cell, width=9 * cell, channels=1, patch=cell)
    if config.model.kind == "transformer":
      fields.update(_sudoku_fields(config.model.graph))
    return Task("mnist_sudoku", regions.make_grid(9 * cell, 9 * cell, cell), fields,
                lambda seed, batch: _ImageSudokuStream(seed, batch, d.pool_size, d.source,
                                                       d.idx_dir),
                items, pixel_metric, "valid", metric_params=cls_params, strip=strip)

  def encode_bank(bank):  # uint8[10, N, s, s] -> f32[10, N, latent_dim]
    return to_x(bank.reshape(-1, cell, cell)).reshape(*bank.shape[:2], -1)

  def latent_items(split, num, validation=False):  # the image items, encoded
    got = items(split, num, validation)
    if validation:
      return got
    return TestItems(np.asarray(encode(codec_params, jnp.asarray(got.x))), got.eligible,
                     got.labels)

  decode = jax.jit(coder.decode)

  def latent_strip(hist, labels, path, shown):  # decoded boards, read by the classifier
    lead = hist.shape[:2]
    imgs = np.asarray(decode(codec_params, jnp.asarray(hist.reshape(-1, *hist.shape[2:]))))
    imgs = imgs.reshape(*lead, *imgs.shape[1:])
    return plots.sudoku_strip(imgs, labels["givens"], path, shown,
                              digits=np.asarray(read(cls_params, imgs)),
                              row_labels=labels.get("row_labels"))

  fields = dict(height=9, width=9, channels=coder.config.latent_dim, patch=1,
                **_sudoku_fields(config.model.graph))
  return Task("mnist_sudoku", regions.make_grid(9, 9, 1), fields,
              lambda seed, batch: _LatentSudokuStream(seed, batch, d.pool_size, d.source,
                                                      d.idx_dir, encode_bank),
              latent_items, latents.latent_metric(coder.decode, pixel_metric), "valid",
              metric_params={"codec": codec_params, "pixels": cls_params}, strip=latent_strip)


# ---- Even Pixels ----

class _EvenPixelsStream:

  def __init__(self, seed, batch_size):
    self.seed, self.batch_size = seed, batch_size

  def batch(self, step):
    rng = np.random.default_rng([even_pixels.TRAIN_SEED, self.seed, step])
    imgs = np.stack([even_pixels.generate(rng) for _ in range(self.batch_size)])
    return {"x": even_pixels.to_model(imgs)}


@register("even_pixels", data_keys=("tfds_dir",), splits=("test",))
def _even_pixels(config) -> Task:

  def test_items(split, num, validation=False):
    if split != "test":
      raise ValueError(f"even_pixels has one split, test; got {split!r}")
    if validation:
      imgs = np.stack([even_pixels.item(100_000 + i) for i in range(num)])
    else:
      rows = tfds_test(tfds_builders.EvenPixels, None, num, config.data.tfds_dir)
      imgs = np.stack([r["image"] for r in rows])
    return TestItems(even_pixels.to_model(imgs), np.ones((num, 64), bool), {})

  return Task("even_pixels", regions.make_grid(32, 32, 4),
              dict(height=32, width=32, channels=3, patch=4),
              lambda seed, batch: _EvenPixelsStream(seed, batch), test_items,
              ep_eval.metrics, "is_color_count_even")


# ---- Counting Polygons ----

class _CountingPolygonsStream:

  def __init__(self, seed, batch_size, backgrounds):
    self.seed, self.batch_size, self.backgrounds = seed, batch_size, backgrounds

  def batch(self, step):
    first = step * self.batch_size
    imgs = np.stack([counting_polygons.item(first + i, "train", backgrounds=self.backgrounds,
                                            seed=self.seed)[0] for i in range(self.batch_size)])
    return {"x": counting_polygons.to_model(imgs)}


@register("counting_polygons", data_keys=("background_dir", "classifier", "tfds_dir"),
          model_keys=("patch",), splits=("test",))
def _counting_polygons(config) -> Task:
  d = config.data
  size = counting_polygons.SIZE
  try:  # regions are patch x patch squares (the spec's 8); the grid checks the patch
    grid = regions.make_grid(size, size, config.model.patch)
  except ValueError as e:
    raise ValueError(f"model.patch: {e}") from None
  backgrounds = counting_polygons.Backgrounds(d.background_dir) if d.background_dir else None
  cls_apply, cls_params, _ = cp_eval.load(d.classifier)

  def test_items(split, num, validation=False):
    if split != "test":
      raise ValueError(f"counting_polygons has one split, test; got {split!r}")
    if validation:
      items = [counting_polygons.item(i, "validation", backgrounds=backgrounds)
               for i in range(num)]
      imgs, counts = np.stack([im for im, _ in items]), [l["num_polygons"] for _, l in items]
    else:
      rows = tfds_test(tfds_builders.CountingPolygons, "folder" if d.background_dir else "blank",
                       num, d.tfds_dir, background_dir=d.background_dir)
      imgs, counts = np.stack([r["image"] for r in rows]), [r["num_polygons"] for r in rows]
    return TestItems(counting_polygons.to_model(imgs), np.ones((num, grid.num_regions), bool),
                     {"num_polygons": np.asarray(counts)})

  return Task("counting_polygons", grid, dict(height=size, width=size, channels=3, patch=grid.patch),
              lambda seed, batch: _CountingPolygonsStream(seed, batch, backgrounds), test_items,
              functools.partial(cp_eval.metrics, cls_apply), "numbers_match_objects",
              metric_params=cls_params)
