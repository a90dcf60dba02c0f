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
