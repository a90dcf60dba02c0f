"""Even Pixels: 32x32 images, half the pixels of one hue and half of the opposite hue (the
headline: is every colour count even); no givens, every 4x4 patch generated."""

from __future__ import annotations

import numpy as np

from experiments.tasks.base import Task, TestItems, register, tfds_test
from ipr_jax import regions, tfds_builders
from ipr_jax.data import even_pixels
from ipr_jax.evaluation import even_pixels as ep_eval


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

  return Task(
    "even_pixels",
    regions.make_grid(32, 32, 4),
    dict(height=32, width=32, channels=3, patch=4),
    lambda seed, batch: _EvenPixelsStream(seed, batch),
    test_items,
    ep_eval.metrics,
    "is_color_count_even",
  )
