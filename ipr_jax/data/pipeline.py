"""Item transforms: raw uint8 items (e.g. of a TFDS data source) -> model arrays in [-1, 1].

Batching and shuffling are grain's (`experiments.loader.SourceStream`)."""

from __future__ import annotations

from typing import Callable

import numpy as np


def to_model(images) -> np.ndarray:
  """uint8 images -> f32 in [-1, 1] (method 1.1), the one scaling every benchmark uses."""
  return (np.asarray(images, np.float32) / 255.0 - 0.5) / 0.5


def sudoku_transform(split: str = "hard") -> Callable[[dict], dict]:
  """mnist_sudoku item -> {'x': f32 image in [-1, 1], 'mask': f32[81] (1 = unknown)}."""

  def f(item):
    return {
      "x": to_model(item["image"]),
      "mask": (~np.asarray(item[f"givens_{split}"])).astype(np.float32),
    }

  return f


def image_transform(item: dict) -> dict:
  return {"x": to_model(item["image"])}
