"""Input pipeline: a random-access data source -> shuffled, batched numpy arrays in [-1, 1]."""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np


def to_model(images) -> np.ndarray:
  """uint8 images -> f32 in [-1, 1] (spec 1.1), the one scaling every benchmark uses."""
  return (np.asarray(images, np.float32) / 255.0 - 0.5) / 0.5


def batches(source, batch_size: int, seed: int, transform: Callable[[dict], dict],
            epochs: int | None = None) -> Iterator[dict]:
  """Yield dicts of stacked arrays; each epoch visits every item once in a seeded order.

  `source` supports len() and [i] (e.g. a TFDS data source); `transform` maps one raw item to
  model arrays (e.g. uint8 image -> f32 in [-1, 1] plus a mask). The last partial batch of an
  epoch is dropped so shapes stay static (one compile).
  """
  if batch_size < 1 or batch_size > len(source):
    raise ValueError(f"batch_size must be in 1..{len(source)}, got {batch_size}")
  epoch = 0
  while epochs is None or epoch < epochs:
    order = np.random.default_rng([seed, epoch]).permutation(len(source))
    for lo in range(0, len(order) - batch_size + 1, batch_size):
      items = [transform(source[int(i)]) for i in order[lo:lo + batch_size]]
      yield {k: np.stack([it[k] for it in items]) for k in items[0]}
    epoch += 1


def sudoku_transform(split: str = "hard") -> Callable[[dict], dict]:
  """mnist_sudoku item -> {'x': f32 image in [-1, 1], 'mask': f32[81] (1 = unknown)}."""
  def f(item):
    return {"x": to_model(item["image"]), "mask": (~np.asarray(item[f"givens_{split}"])).astype(np.float32)}
  return f


def image_transform(item: dict) -> dict:
  return {"x": to_model(item["image"])}
