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
"""

from __future__ import annotations

import grain
from absl import flags


def dataset(stream, total_steps: int, workers: int = 0) -> grain.IterDataset:
  """Steps 0..total_steps-1 as batches, prefetched by `workers` processes when > 0."""
  if int(workers) != workers or workers < 0:
    raise ValueError(f"data workers must be an integer >= 0, got {workers}")
  if total_steps < 0:
    raise ValueError(f"total_steps must be >= 0, got {total_steps}")
  ds = grain.MapDataset.range(total_steps).map(stream.batch).to_iter_dataset()
  if workers:
    if not flags.FLAGS.is_parsed():  # grain reads absl flags in its workers' setup
      flags.FLAGS.mark_as_parsed()
    ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=int(workers)))
  return ds


def iterator(
  stream, total_steps: int, workers: int = 0, state: dict | None = None, start: int = 0
) -> grain.DatasetIterator:
  """An iterator over the run's batches positioned at step `start`: set from the saved iterator
  `state` when there is one, else (a checkpoint written before iterator states were saved)
  positioned by index, which the serial iterator supports."""
  it = iter(dataset(stream, total_steps, workers))
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
    self.dataset = (
      grain.MapDataset.source(source)
      .shuffle(seed=seed)
      .repeat()
      .map(transform)
      .batch(int(batch_size), drop_remainder=True)
    )

  def batch(self, step: int) -> dict:
    return self.dataset[int(step)]
