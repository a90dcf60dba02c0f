"""Counting Polygons: 128x128 images of 1-9 polygons and two written numbers that must match
their count and vertex count; no givens, every patch generated."""

from __future__ import annotations

import functools

import numpy as np

from experiments.tasks.base import Task, TestItems, register, tfds_test
from ipr_jax import regions, tfds_builders
from ipr_jax.data import counting_polygons
from ipr_jax.evaluation import counting_polygons as cp_eval


class _CountingPolygonsStream:
  def __init__(self, seed, batch_size, backgrounds):
    self.seed, self.batch_size, self.backgrounds = seed, batch_size, backgrounds

  def batch(self, step):
    return self.rows(step, 0, self.batch_size)

  def rows(self, step, lo, hi):
    """Rows lo..hi-1 of the step's batch: only those items are rendered (process sharding)."""
    first = step * self.batch_size
    imgs = np.stack(
      [
        counting_polygons.item(first + i, "train", backgrounds=self.backgrounds, seed=self.seed)[0]
        for i in range(lo, hi)
      ]
    )
    return {"x": counting_polygons.to_model(imgs)}


@register(
  "counting_polygons",
  data_keys=("background_dir", "classifier", "tfds_dir"),
  model_keys=("patch",),
  splits=("test",),
)
def _counting_polygons(config) -> Task:
  d = config.data
  size = counting_polygons.SIZE
  try:  # regions are patch x patch squares (the papers' 8); the grid checks the patch
    grid = regions.make_grid(size, size, config.model.patch)
  except ValueError as e:
    raise ValueError(f"model.patch: {e}") from None
  backgrounds = counting_polygons.Backgrounds(d.background_dir) if d.background_dir else None
  cls_apply, cls_params, _ = cp_eval.load(d.classifier)

  def test_items(split, num, validation=False):
    if split != "test":
      raise ValueError(f"counting_polygons has one split, test; got {split!r}")
    if validation:
      items = [counting_polygons.item(i, "validation", backgrounds=backgrounds) for i in range(num)]
      imgs, counts = np.stack([im for im, _ in items]), [l["num_polygons"] for _, l in items]
    else:
      rows = tfds_test(
        tfds_builders.CountingPolygons,
        "folder" if d.background_dir else "blank",
        num,
        d.tfds_dir,
        background_dir=d.background_dir,
      )
      imgs, counts = np.stack([r["image"] for r in rows]), [r["num_polygons"] for r in rows]
    return TestItems(
      counting_polygons.to_model(imgs),
      np.ones((num, grid.num_regions), bool),
      {"num_polygons": np.asarray(counts)},
    )

  return Task(
    "counting_polygons",
    grid,
    dict(height=size, width=size, channels=3, patch=grid.patch),
    lambda seed, batch: _CountingPolygonsStream(seed, batch, backgrounds),
    test_items,
    functools.partial(cp_eval.metrics, cls_apply),
    "numbers_match_objects",
    metric_params=cls_params,
  )
