"""Kill drill: a training run SIGKILLed mid checkpoint-write, or at a random moment of a random
step, resumes and ends with exactly the parameters, EMA and optimiser state of an uninterrupted
run (batches and keys are functions of (seed, step); half-written Orbax steps are ignored)."""

import os
import random
import signal
import subprocess
import sys

import jax
import jax.numpy as jnp

from experiments import train, translate
from experiments.configs import sudoku_symbolic
from ipr_jax import checkpoints

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def drill_config():
  config = sudoku_symbolic.get_config("smoke")
  config.train.update(steps=8, checkpoint_every=2, eval_every=4, log_every=2)
  return config


def _final_state(workdir):
  config = drill_config()
  _, _, target = train.build_state(translate.translate(config))
  state, _ = checkpoints.restore(
    checkpoints.manager(os.path.join(workdir, "checkpoints"), create=False), target
  )
  return state


def _start_killed_run(workdir, where, n, delay, log_path):
  """The driver in its own process; its output goes to the file `log_path` (a full pipe would
  stall a process that is not being read)."""
  with open(log_path, "w") as log:  # the child keeps its own handle
    return subprocess.Popen(
      [sys.executable, "-m", "tests.kill_driver", str(workdir), where, str(n), str(delay)],
      cwd=ROOT,
      stdout=log,
      stderr=subprocess.STDOUT,
    )


def test_sigkill_then_resume_gives_the_uninterrupted_result(tmp_path):
  reference = tmp_path / "reference"
  train.train(drill_config(), str(reference))
  want = _final_state(reference)
  rnd = random.Random(0)
  drills = {
    "mid_write": ("save", 3, 0.005),  # 3rd save = the step-4 checkpoint, mid write
    "random": ("step", rnd.randint(2, 8), rnd.uniform(0.0, 0.3)),
  }
  # the killed runs are independent processes: started together, their start-ups overlap
  procs = {
    name: _start_killed_run(tmp_path / name, *drill, tmp_path / f"{name}.log")
    for name, drill in drills.items()
  }
  for name, proc in procs.items():
    proc.wait(timeout=600)
    assert proc.returncode == -signal.SIGKILL, (tmp_path / f"{name}.log").read_text()[-2000:]
  for name in drills:
    workdir = tmp_path / name
    out = train.train(drill_config(), str(workdir))  # resume to the end
    assert out["step"] == 8
    got = _final_state(workdir)
    same = jax.tree.map(
      jnp.array_equal,
      (got.params, got.ema_params, got.opt_state),
      (want.params, want.ema_params, want.opt_state),
    )
    assert all(jax.tree.leaves(same)), name
    assert not [d for d in os.listdir(workdir / "checkpoints") if "tmp" in d]
