"""The prefetching workers hand the trainer exactly the batches of a serial run, in step order."""
import numpy as np
import pytest

from experiments import prefetch
from ipr_jax.data import sudoku


class _Failing:
  def batch(self, step):
    if step == 3:
      raise RuntimeError("bad step 3")
    return {"step": np.array(step)}


def test_workers_match_serial_batches():
  stream = sudoku.TrainStream(seed=5, batch_size=4, pool_size=16)
  serial = list(prefetch.batches(stream, 7, 13, workers=0))
  parallel = list(prefetch.batches(stream, 7, 13, workers=2, ahead=3))
  assert len(serial) == len(parallel) == 6
  for a, b in zip(serial, parallel):
    np.testing.assert_array_equal(a["x"], b["x"])
    np.testing.assert_array_equal(a["mask"], b["mask"])
  # in step order: batch k is the stream's batch at step 7 + k, and steps differ
  np.testing.assert_array_equal(parallel[2]["x"], stream.batch(9)["x"])
  assert not np.array_equal(parallel[0]["x"], parallel[1]["x"])


def test_worker_error_reaches_the_trainer_and_early_stop_is_clean():
  it = prefetch.batches(_Failing(), 0, 10, workers=1, ahead=2)
  assert int(next(it)["step"]) == 0
  it.close()  # stopping early cancels the batches in flight without error
  with pytest.raises(RuntimeError, match="bad step 3"):
    list(prefetch.batches(_Failing(), 0, 10, workers=1))


def test_bad_worker_count():
  with pytest.raises(ValueError, match="workers"):
    next(prefetch.batches(_Failing(), 0, 2, workers=-1))
