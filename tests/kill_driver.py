"""Subprocess of tests/test_kill_drill.py: train the smoke config and SIGKILL ourselves.

python -m tests.kill_driver WORKDIR save N DELAY   # during the N-th checkpoint write
python -m tests.kill_driver WORKDIR step N DELAY   # DELAY s into training step N
"""

import os
import signal
import sys
import threading

import orbax.checkpoint as ocp

from experiments import train
from tests.test_kill_drill import drill_config


def _kill_later(delay: float) -> None:
  threading.Timer(delay, lambda: os.kill(os.getpid(), signal.SIGKILL)).start()


def main(workdir: str, where: str, n: int, delay: float) -> None:
  calls = [0]
  if where == "save":
    target, name = ocp.CheckpointManager, "save"
  else:
    target, name = train.training, "shard_batch"
  original = getattr(target, name)

  def counted(*args, **kwargs):
    calls[0] += 1
    if calls[0] == n:
      _kill_later(delay)
    return original(*args, **kwargs)

  setattr(target, name, counted)
  train.train(drill_config(), workdir)


if __name__ == "__main__":
  main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
