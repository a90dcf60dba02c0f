"""Training batches through grain: index-based, seeded, multi-worker, checkpointable.

Every training stream here is a function of (seed, step) alone (`stream.batch(step)`), so the
data of a run is the grain `MapDataset` of steps 0..total-1 mapped by `stream.batch`: element i
is step i's batch. `workers > 0` builds batches ahead in that many grain worker processes
(`mp_prefetch`; they receive the stream pickled and never touch JAX); the order and content are
those of a serial run. The iterator's state (`get_state()`, a small JSON dict) is saved with each
Orbax checkpoint (`ipr_jax.checkpoints.save(..., data_state=...)`) and set again on resume.

A prepared dataset (e.g. a TFDS split read with `as_data_source()`) trains through the same
path: `SourceStream` is a stream whose step-`i` batch is element i of the grain dataset
source -> shuffle (per epoch, seeded) -> repeat -> transform -> batch.

Process sharding (one job over several processes): with `rows=(lo, hi)` each process's
dataset yields only rows lo..hi-1 of every step's global batch, the rows its devices hold
(`ipr_jax.sharding.process_rows`). A stream with a `rows(step, lo, hi)` method builds only
those items (the per-item streams: `SourceStream`, Counting Polygons' renderer); a stream
whose batch comes from one seeded draw (Sudoku boards, Even Pixels) draws it and keeps its rows.
"""

from __future__ import annotations

import functools

import grain
import numpy as np
from absl import flags


def batch_rows(stream, rows: tuple[int, int], step: int) -> dict:
  """Rows lo..hi-1 of the stream's step batch: built alone where the stream can."""
  lo, hi = rows
  if hasattr(stream, "rows"):
    return stream.rows(step, lo, hi)
  return {k: v[lo:hi] for k, v in stream.batch(step).items()}


def dataset(stream, total_steps: int, workers: int = 0, rows=None) -> grain.IterDataset:
  """Steps 0..total_steps-1 as batches (only rows lo..hi-1 of each with `rows=(lo, hi)`),
  prefetched by `workers` processes when > 0."""
  if int(workers) != workers or workers < 0:
    raise ValueError(f"data workers must be an integer >= 0, got {workers}")
  if total_steps < 0:
    raise ValueError(f"total_steps must be >= 0, got {total_steps}")
  if rows is not None and not 0 <= rows[0] < rows[1]:
    raise ValueError(f"rows must be (lo, hi) with 0 <= lo < hi, got {rows}")
  build = stream.batch if rows is None else functools.partial(batch_rows, stream, tuple(rows))
  ds = grain.MapDataset.range(total_steps).map(build).to_iter_dataset()
  if workers:
    if not flags.FLAGS.is_parsed():  # grain reads absl flags in its workers' setup
      flags.FLAGS.mark_as_parsed()
    ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=int(workers)))
  return ds


def iterator(
  stream,
  total_steps: int,
  workers: int = 0,
  state: dict | None = None,
  start: int = 0,
  rows=None,
) -> grain.DatasetIterator:
  """An iterator over the run's batches (or their `rows`) positioned at step `start`: set from
  the saved iterator `state` when there is one (the same for every process and for any
  `rows`), else (a checkpoint written before iterator states were saved) positioned by index,
  which the serial iterator supports."""
  it = iter(dataset(stream, total_steps, workers, rows))
  if state is not None:
    it.set_state(state)
  elif start:
    if workers:
      raise ValueError(
        f"the checkpoint at step {start} holds no data iterator state (written "
        "before they were saved): resume it with train.data_workers=0"
      )
    it.set_state({"next_index": int(start)})
  return it


class SourceStream:
  """Training batches from a random-access `source` (len() and [i], e.g. a TFDS split's data
  source) through grain: shuffled per epoch with `seed`, each item mapped by `transform` (e.g.
  `ipr_jax.data.pipeline.image_transform`), batched; `batch(step)` is that step's batch, so it
  plugs into `iterator` and a benchmark's `train_stream` like the procedural streams."""

  def __init__(self, source, batch_size: int, seed: int, transform):
    if int(batch_size) != batch_size or not 1 <= batch_size <= len(source):
      raise ValueError(f"batch_size must be an integer in 1..{len(source)}, got {batch_size}")
    self.batch_size = int(batch_size)
    self.items = grain.MapDataset.source(source).shuffle(seed=seed).repeat().map(transform)
    self.dataset = self.items.batch(self.batch_size, drop_remainder=True)

  def batch(self, step: int) -> dict:
    return self.dataset[int(step)]

  def rows(self, step: int, lo: int, hi: int) -> dict:
    """Rows lo..hi-1 of `batch(step)`, reading and transforming only those items."""
    first = int(step) * self.batch_size
    items = [self.items[first + j] for j in range(lo, hi)]
    return {k: np.stack([item[k] for item in items]) for k in items[0]}
