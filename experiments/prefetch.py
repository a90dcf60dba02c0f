"""Training batches computed ahead by worker processes, in step order.

Every training stream here is a function of (seed, step) alone (`stream.batch(step)`), so workers
can build any step's batch independently and the run sees exactly the batches of a serial run.
Workers are spawned (never forked: the parent has JAX's threads running) and receive the stream
object once, pickled; they never touch JAX.
"""
from __future__ import annotations

import collections
import concurrent.futures
import multiprocessing
from typing import Iterator

_STREAM = None


def _init(stream) -> None:
  global _STREAM
  _STREAM = stream


def _batch(step: int):
  return _STREAM.batch(step)


def batches(stream, start: int, stop: int, workers: int = 0, ahead: int | None = None) -> Iterator:
  """Yield `stream.batch(step)` for step = start .. stop-1, in order.

  workers = 0 computes each batch in this process when asked for (no processes started);
  workers > 0 keeps `ahead` (default 4 * workers) future batches in flight in a process pool.
  """
  if workers < 0:
    raise ValueError(f"workers must be >= 0, got {workers}")
  if workers == 0:
    for step in range(start, stop):
      yield stream.batch(step)
    return
  ahead = ahead or 4 * workers
  if ahead < 1:
    raise ValueError(f"ahead must be >= 1, got {ahead}")
  ctx = multiprocessing.get_context("spawn")
  with concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init,
                                              initargs=(stream,)) as pool:
    pending = collections.deque()
    nxt = start
    try:
      while nxt < stop or pending:
        while nxt < stop and len(pending) < ahead:
          pending.append(pool.submit(_batch, nxt))
          nxt += 1
        yield pending.popleft().result()
    finally:  # a consumer that stops early (break, exception) must not wait for unused batches
      for f in pending:
        f.cancel()
