"""Training batches through grain: workers hand the trainer exactly the serial run's batches in
step order, and a saved iterator state (as in the Orbax checkpoint) resumes at the right step."""

import json

import numpy as np
import pytest

from experiments import loader
from ipr_jax import checkpoints
from ipr_jax.data import sudoku


class _Failing:
  def batch(self, step):
    if step == 3:
      raise RuntimeError("bad step 3")
    return {"step": np.array(step)}


def _xs(it, n):
  return [np.asarray(next(it)["x"]) for _ in range(n)]


def test_workers_match_serial_batches_and_resume_from_a_saved_state(tmp_path):
  stream = sudoku.TrainStream(seed=5, batch_size=4, pool_size=16)
  serial = list(loader.iterator(stream, 9, workers=0))
  assert len(serial) == 9
  for k in (0, 4, 8):  # element k is the stream's batch of step k, and steps differ
    np.testing.assert_array_equal(serial[k]["x"], stream.batch(k)["x"])
  assert not np.array_equal(serial[0]["x"], serial[1]["x"])
  it = loader.iterator(stream, 9, workers=2)
  first = _xs(it, 4)
  for a, b in zip(first, serial):
    np.testing.assert_array_equal(a, b["x"])
  # the state goes into an Orbax checkpoint as JSON and positions a new iterator at step 4
  mgr = checkpoints.manager(str(tmp_path / "ckpt"))
  checkpoints.save(mgr, 4, {"w": np.zeros(2)}, {"c": 1}, data_state=it.get_state())
  state = checkpoints.data_state(mgr)
  json.dumps(state)
  rest = list(loader.iterator(stream, 9, workers=2, state=state, start=4))
  assert len(rest) == 5
  for a, b in zip(rest, serial[4:]):
    np.testing.assert_array_equal(np.asarray(a["x"]), b["x"])
  # a checkpoint without a saved state: the serial iterator is positioned by index
  np.testing.assert_array_equal(next(loader.iterator(stream, 9, start=6))["x"], serial[6]["x"])
  with pytest.raises(ValueError, match="data_workers=0"):
    loader.iterator(stream, 9, workers=2, start=6)


def test_a_checkpoint_without_data_state_reads_none(tmp_path):
  mgr = checkpoints.manager(str(tmp_path / "ckpt"))
  checkpoints.save(mgr, 2, {"w": np.zeros(2)})
  assert checkpoints.data_state(mgr) is None


def test_worker_error_reaches_the_trainer():
  it = loader.iterator(_Failing(), 10, workers=0)
  assert int(next(it)["step"]) == 0
  with pytest.raises(RuntimeError, match="bad step 3"):
    list(it)
  with pytest.raises(RuntimeError, match="bad step 3"):
    list(loader.iterator(_Failing(), 10, workers=1))


def test_bad_worker_count():
  with pytest.raises(ValueError, match="workers"):
    loader.iterator(_Failing(), 2, workers=-1)


class _CountingSource:
  """A random-access source that counts the items read."""

  def __init__(self, n):
    self.n, self.read = n, set()

  def __len__(self):
    return self.n

  def __getitem__(self, i):
    self.read.add(int(i))
    return np.full((2,), i, np.float32)


def test_process_rows_are_the_rows_of_the_global_batch_and_built_alone():
  """A process's share (rows lo..hi-1) equals those rows of the serial batches, for a batch-seeded
  stream (drawn whole, sliced), the grain source stream and Counting Polygons' renderer (both
  build only their rows); it resumes from the same iterator state as the whole batch."""
  from experiments.tasks import counting_polygons as cp_task

  source = _CountingSource(40)
  streams = [
    sudoku.TrainStream(seed=5, batch_size=4, pool_size=16),
    loader.SourceStream(source, 4, 3, lambda v: {"x": v}),
    cp_task._CountingPolygonsStream(0, 4, None),
  ]
  for stream in streams:
    steps = 2 if isinstance(stream, cp_task._CountingPolygonsStream) else 5
    whole = list(loader.iterator(stream, steps))
    part = list(loader.iterator(stream, steps, rows=(1, 3)))
    for w, p in zip(whole, part):
      assert set(w) == set(p)
      for k in w:
        np.testing.assert_array_equal(p[k], w[k][1:3])
  source.read.clear()
  stream = loader.SourceStream(source, 4, 3, lambda v: {"x": v})
  row_items = stream.rows(7, 2, 4)["x"][:, 0]
  assert len(source.read) == 2 and set(row_items.astype(int)) == source.read  # no other item
  it = loader.iterator(streams[0], 5, rows=(2, 4))
  next(it), next(it)
  resumed = loader.iterator(streams[0], 5, state=it.get_state(), rows=(2, 4))
  np.testing.assert_array_equal(next(resumed)["x"], streams[0].batch(2)["x"][2:4])
  with pytest.raises(ValueError, match="rows must be"):
    loader.dataset(streams[0], 3, rows=(3, 3))


def test_process_rows_and_shard_rows_in_one_process():
  """One process holds every row of the batch; its rows placed with shard_rows equal
  shard_batch's global array (the multi-process case: tests/test_multihost.py)."""
  import jax

  from ipr_jax import sharding

  mesh = sharding.data_mesh()
  assert sharding.process_rows(mesh, 8) == (0, 8)
  batch = {"x": np.arange(16, dtype=np.float32).reshape(8, 2)}
  a, b = sharding.shard_rows(batch, mesh, 8), sharding.shard_batch(batch, mesh)
  assert a["x"].sharding.is_equivalent_to(b["x"].sharding, 2)
  np.testing.assert_array_equal(jax.device_get(a["x"]), batch["x"])
