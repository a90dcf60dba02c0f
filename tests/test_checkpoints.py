import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import pytest

from ipr_jax import checkpoints, training
from tests.test_training import tiny_batch, tiny_setup


def _equal(a, b):
  return all(jax.tree.leaves(jax.tree.map(lambda x, y: bool(jnp.array_equal(x, y)), a, b)))


def _train(state, step, start, n):
  for i in range(start, start + n):
    state, _ = step(state, tiny_batch(i), jax.random.fold_in(jax.random.key(1), i))
  return state


def test_save_restore_bit_exact(tmp_path):
  _, params, opt, step = tiny_setup()
  state = _train(training.init_state(params, opt), step, 0, 3)
  mgr = checkpoints.manager(str(tmp_path / "ck"))
  checkpoints.save(mgr, 3, state, {"lr": 3e-3, "name": "tiny"})
  target = training.init_state(params, opt)
  restored, cfg = checkpoints.restore(checkpoints.manager(str(tmp_path / "ck")), target)
  assert cfg == {"lr": 3e-3, "name": "tiny"}
  assert int(restored.step) == 3
  assert _equal(restored, state)
  assert jax.tree.structure(restored) == jax.tree.structure(state)


def test_keeps_last_n(tmp_path):
  _, params, opt, _ = tiny_setup()
  state = training.init_state(params, opt)
  mgr = checkpoints.manager(str(tmp_path), max_to_keep=2)
  for s in (1, 2, 3):
    checkpoints.save(mgr, s, state)
  assert sorted(mgr.all_steps()) == [2, 3]


RESUME = textwrap.dedent("""
  import sys; sys.path.insert(0, {root!r})
  import jax
  from ipr_jax import checkpoints, training
  from tests.test_training import tiny_setup
  from tests.test_checkpoints import _train
  _, params, opt, step = tiny_setup()
  mgr = checkpoints.manager({ck!r})
  state, _ = checkpoints.restore(mgr, training.init_state(params, opt))
  state = _train(state, step, int(state.step), {n})
  checkpoints.save(mgr, int(state.step), state)
""")


def test_resume_in_fresh_process_equals_uninterrupted(tmp_path):
  n = 4
  _, params, opt, step = tiny_setup()
  full = _train(training.init_state(params, opt), step, 0, 2 * n)
  _, params, opt, step = tiny_setup()
  half = _train(training.init_state(params, opt), step, 0, n)
  ck = str(tmp_path / "ck")
  checkpoints.save(checkpoints.manager(ck), n, half)
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  res = subprocess.run(
    [sys.executable, "-c", RESUME.format(root=root, ck=ck, n=n)],
    cwd=root,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert res.returncode == 0, res.stderr[-3000:]
  resumed, _ = checkpoints.restore(checkpoints.manager(ck), training.init_state(params, opt))
  assert int(resumed.step) == 2 * n
  assert _equal(resumed.params, full.params) and _equal(resumed.ema_params, full.ema_params)


def test_corrupt_and_missing_are_clear_errors(tmp_path):
  _, params, opt, _ = tiny_setup()
  state = training.init_state(params, opt)
  ck = tmp_path / "ck"
  mgr = checkpoints.manager(str(ck))
  checkpoints.save(mgr, 1, state)
  checkpoints.save(mgr, 2, state.replace(step=state.step + 2))
  for root, _, files in os.walk(ck / "2" / "state"):
    for f in files:
      open(os.path.join(root, f), "w").close()  # truncate every file of step 2
  with pytest.raises(checkpoints.CheckpointError, match=str(ck / "2")):
    checkpoints.restore(checkpoints.manager(str(ck)), state)
  prev, _ = checkpoints.restore(checkpoints.manager(str(ck)), state, step=1)
  assert _equal(prev, state)
  with pytest.raises(checkpoints.CheckpointError, match="does not exist"):
    checkpoints.manager(str(tmp_path / "nope"), create=False)
  with pytest.raises(checkpoints.CheckpointError, match="no checkpoint"):
    checkpoints.restore(checkpoints.manager(str(tmp_path / "empty")), state)
