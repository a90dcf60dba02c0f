"""Benchmarks: the one registry of what a benchmark brings (`base`), one module per benchmark
family; importing this package registers them all."""

from experiments.tasks.base import (
  Benchmark,
  Task,
  TestItems,
  get,
  make_task,
  names,
  register,
  tfds_test,
)
from experiments.tasks import counting_polygons, even_pixels, sudoku  # noqa: F401  (registers)

__all__ = ["Benchmark", "Task", "TestItems", "get", "make_task", "names", "register", "tfds_test"]
