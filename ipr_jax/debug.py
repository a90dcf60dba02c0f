"""NaN hunting: finite checks inside the compiled loops, off unless asked for.

`sample(..., debug=True)`, `refine(..., debug=True)` and `make_train_step(..., debug=True)` (or
the environment variable IPR_JAX_DEBUG_NANS=1, read when those are called) compile a separate,
checked version of the function: every `check_finite` below becomes a
`chex.assert_tree_all_finite`, run through checkify by `chex.chexify`, on the loop state and the
denoiser output of every step (and on the loss, gradients and new params of a train step). The first non-finite value raises an AssertionError
naming what was not finite. The normal path is untouched: outside a checked trace
`check_finite` adds nothing to the program.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading

import chex
import jax
import jax.numpy as jnp

ENV = "IPR_JAX_DEBUG_NANS"
_tracing = threading.local()


def requested(debug: bool | None) -> bool:
  """debug if given, else the environment switch."""
  if debug is None:
    return os.environ.get(ENV, "0") not in ("", "0", "false", "False")
  return bool(debug)


def active() -> bool:
  """True while a checked function is being traced."""
  return getattr(_tracing, "on", False)


@contextlib.contextmanager
def _checking():
  before = active()
  _tracing.on = True
  try:
    yield
  finally:
    _tracing.on = before


def check_finite(tree, name: str) -> None:
  """Inside a checked trace: fail at run time if a leaf of `tree` holds NaN or Inf."""
  if not active():
    return
  for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
    if jnp.issubdtype(jnp.result_type(leaf), jnp.inexact):
      chex.assert_tree_all_finite(
        leaf, custom_message=f"{name}{jax.tree_util.keystr(path)} holds NaN or Inf"
      )


@functools.lru_cache(maxsize=64)
def checked(fn, *static):
  """chexified jit of fn(*static, *args), traced with the checks on; one per (fn, static)."""

  def traced(*args):
    with _checking():
      return fn(*static, *args)

  return chex.chexify(jax.jit(traced), async_check=False)
