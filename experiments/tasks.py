"""Benchmark adapters: config -> denoiser, training stream, test items, metrics, pictures.

The library never reads a ConfigDict; this module turns one into the library's dataclasses.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax.numpy as jnp
import numpy as np

from ipr_jax import denoisers, graphs, regions
from ipr_jax.data import sudoku
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


def _sudoku_symbolic(config) -> Task:
  m = config.model
  row, col, box = graphs.sudoku_position_ids()
  graph = graphs.sudoku_peers() if m.graph == "sudoku_peers" else graphs.full(81)
  model = denoisers.TransformerConfig(
      9, 9, 9, 1, dim=m.dim, depth=m.depth, heads=m.heads, mlp_ratio=m.mlp_ratio,
      dropout=m.dropout, position_ids=(tuple(row), tuple(col), tuple(box)),
      attention_graph=tuple(map(tuple, graph)))

  def test_items(split, num, validation=False):
    get = sudoku.validation_set if validation else sudoku.test_set
    boards, givens = get(split, num)
    return TestItems(sudoku.to_symbolic(boards), ~givens, {"boards": boards, "givens": givens})

  return Task("sudoku_symbolic", regions.make_grid(9, 9, 1), model,
              lambda seed, batch: sudoku.TrainStream(seed, batch, config.train.get("pool_size", 5000)), test_items,
              sudoku_eval.symbolic_metrics, "valid")


TASKS = {"sudoku_symbolic": _sudoku_symbolic}


def make_task(config) -> Task:
  if config.benchmark not in TASKS:
    raise ValueError(f"benchmark must be one of {tuple(TASKS)}, got {config.benchmark!r}")
  return TASKS[config.benchmark](config)
