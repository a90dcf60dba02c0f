"""Benchmarks: the one registry of what a benchmark brings (geometry, data, metric, pictures).

A benchmark is registered with the data and model keys it reads from the experiment config and
a builder `config -> Task` (one module per benchmark family in experiments/tasks/, each registered
when the package is imported):

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
import numpy as np

from experiments import plots
from ipr_jax import refine, registry, regions


@dataclasses.dataclass
class TestItems:
  x: np.ndarray  # f32[N, H, W, C] ground truth (givens read from it)
  eligible: np.ndarray  # bool[N, R] regions to generate / refine
  labels: dict  # extra per-item arrays for plots (each with N leading)


@dataclasses.dataclass
class Task:
  """What a benchmark brings. `metric_fn(x f32[B, H, W, C]) -> {name: f32[B]}`, or with
  `metric_params` (an evaluator's weights) `metric_fn(metric_params, x)`: the convention of
  `ipr_jax.refine`, so the weights are an argument of the compiled refine, not constants."""

  name: str
  grid: regions.RegionGrid
  model_fields: dict  # denoiser fields the benchmark fixes (geometry, ...)
  train_stream: Callable[[int, int], object]  # (seed, batch) -> object with .batch(step)
  test_items: Callable[..., TestItems]  # (split, num, validation=False) -> items
  metric_fn: Callable
  headline: str  # metric name reported in tables
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
  build: Callable  # config -> Task
  data_keys: tuple  # keys of config.data it reads (all required)
  model_keys: tuple  # benchmark keys of config.model besides kind, dtype and the kinds
  splits: tuple  # named held-out splits (() = not checked before the task is built)


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
