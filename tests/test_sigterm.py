"""`kill` (SIGTERM) of an experiment run takes its grain data workers with it."""

import os
import signal
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = """
import sys, time
from experiments import loader, main
class Stream:
    def batch(self, step):
        return {"x": [step]}
main.exit_on_sigterm()
it = loader.iterator(Stream(), 10**6, workers=1)
next(it)
print("ready", flush=True)
while True:
    time.sleep(0.1)
"""


def _children(pid: int) -> list[int]:
  out = []
  for entry in os.listdir("/proc"):
    if entry.isdigit():
      try:
        with open(f"/proc/{entry}/stat") as f:
          if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(entry))
      except (OSError, IndexError, ValueError):
        pass
  return out


def _alive(pid: int) -> bool:
  try:
    with open(f"/proc/{pid}/stat") as f:
      return f.read().rsplit(")", 1)[1].split()[0] != "Z"
  except OSError:
    return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_sigterm_ends_the_data_workers_too():
  proc = subprocess.Popen(
    [sys.executable, "-c", SCRIPT],
    cwd=ROOT,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )
  try:
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()[-2000:]
    workers = [c for c in _children(proc.pid) if _alive(c)]
    assert workers, "the iterator started no worker process"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    deadline = time.time() + 30
    while any(map(_alive, workers)) and time.time() < deadline:
      time.sleep(0.2)
    assert not any(map(_alive, workers)), "grain workers outlived the killed run"
  finally:
    if proc.poll() is None:
      proc.kill()
