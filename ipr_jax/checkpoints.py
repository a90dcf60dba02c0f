"""Orbax checkpoints behind one small interface: save / restore / resume, keep the last N.

Each step directory holds the TrainState (params, EMA, optimiser state, step, time density), the
run's config as JSON and, where the run reads its batches through a checkpointable iterator
(e.g. grain's), that iterator's state as JSON, so a resumed run reads exactly the batches an
uninterrupted one would. Restores go against an abstract target (shapes and dtypes of a freshly
built state), so a checkpoint is read back with the exact structure the code expects.
"""

from __future__ import annotations

import os
from typing import Any, Optional

import jax
import orbax.checkpoint as ocp


class CheckpointError(ValueError):
  """A missing, empty or unreadable checkpoint directory (names the path)."""


def manager(directory: str, max_to_keep: int = 3, create: bool = True) -> ocp.CheckpointManager:
  """A CheckpointManager on `directory` (absolute path) keeping the last `max_to_keep` steps."""
  directory = os.path.abspath(directory)
  if not create and not os.path.isdir(directory):
    raise CheckpointError(f"checkpoint directory does not exist: {directory}")
  options = ocp.CheckpointManagerOptions(
    max_to_keep=max_to_keep, create=create, enable_async_checkpointing=False
  )
  return ocp.CheckpointManager(directory, options=options, item_names=("state", "config", "data"))


def save(
  mgr: ocp.CheckpointManager,
  step: int,
  state,
  config: Optional[dict] = None,
  force: bool = True,
  data_state: Optional[dict] = None,
) -> None:
  """Write `state` (any pytree of arrays), `config` (JSON-able dict) and, if given, the data
  iterator's `data_state` (JSON-able dict, e.g. `grain.DatasetIterator.get_state()`) as `step`."""
  items = dict(state=ocp.args.StandardSave(state), config=ocp.args.JsonSave(config or {}))
  if data_state is not None:
    items["data"] = ocp.args.JsonSave(data_state)
  mgr.save(int(step), args=ocp.args.Composite(**items), force=force)
  mgr.wait_until_finished()


def data_state(mgr: ocp.CheckpointManager, step: Optional[int] = None) -> Optional[dict]:
  """The data iterator state saved with `step` (default latest), or None if it has none."""
  step = mgr.latest_step() if step is None else int(step)
  if step is None or not os.path.isdir(os.path.join(str(mgr.directory), str(step), "data")):
    return None
  try:
    return dict(mgr.restore(step, args=ocp.args.Composite(data=ocp.args.JsonRestore())).data)
  except Exception as e:
    raise CheckpointError(
      f"data iterator state of {mgr.directory}/{step} is unreadable: {type(e).__name__}: {e}"
    ) from e


def latest_step(mgr: ocp.CheckpointManager) -> Optional[int]:
  return mgr.latest_step()


def _abstract(target):
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, target)


def restore(mgr: ocp.CheckpointManager, target, step: Optional[int] = None) -> tuple[Any, dict]:
  """Restore (state, config) at `step` (default latest) with `target`'s structure.

  Raises CheckpointError naming the path if there is no checkpoint or it cannot be read.
  """
  path = str(mgr.directory)
  step = mgr.latest_step() if step is None else int(step)
  if step is None:
    raise CheckpointError(f"no checkpoint found in {path}")
  step_dir = os.path.join(path, str(step))
  try:
    out = mgr.restore(
      step,
      args=ocp.args.Composite(
        state=ocp.args.StandardRestore(_abstract(target)), config=ocp.args.JsonRestore()
      ),
    )
  except Exception as e:  # orbax raises many types for truncated/corrupt files
    raise CheckpointError(
      f"checkpoint at {step_dir} is missing or corrupt: {type(e).__name__}: {e}"
    ) from e
  return out.state, dict(out.config or {})


def restore_params(directory: str, target, step: Optional[int] = None, ema: bool = True):
  """Convenience for sampling code: the (EMA) params of a TrainState-shaped checkpoint."""
  state, config = restore(manager(directory, create=False), target, step)
  return (state.ema_params if ema else state.params), config
