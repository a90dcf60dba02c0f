"""Adaptive restarts: `refine`'s accept_below policy, spending only the compute it counts.

`refine(..., RefineConfig(chains=K, pick=..., accept_below=a))` runs all K chains of every item
in one compiled program, then keeps per item the chains up to the first one its pick accepts
(final doubt below a): the policy's result and its per-item NFE, but the compute of all K.
`solve` returns the same result running a chain only while its item needs it: a number of
slots, each holding one (item, chain); after every step the items whose chain was accepted, or
whose K-th chain ran, leave, and their slots take the next item; once no item waits, the slot
count halves as the items in flight thin out. Items the model settles at once cost one chain,
the doubtful ones up to K, so the mean cost follows the items' difficulty.

One compiled step per slot count (at most log2(slots) + 1); the host only schedules. Item b's
chain c draws from fold_in(split(key, K)[c], item_ids[b]) as in `refine`, so its result does
not depend on the slot count or on which items share a step. One device (the slots are one
batch).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from ipr_jax import debug as debug_lib
from ipr_jax import refine as refine_lib
from ipr_jax import rng, sampling


def _slot_step(
  apply_fn, metric_fn, cfg, params, metric_params, chain_keys, chain, ids, x, eligible
):
  """One chain per slot: slot s runs chain chain[s] of item ids[s] (RefineResult over slots)."""
  keys = jax.vmap(jax.random.fold_in)(chain_keys[chain], ids)
  return refine_lib.refine_chain(apply_fn, metric_fn, cfg, params, metric_params, keys, x, eligible)


_slot_step_jit = jax.jit(_slot_step, static_argnums=(0, 1, 2))

# the batch axis of each RefineResult field of one chain (after the rounds axis where it has one)
_BATCH_AXIS = {
  "x": 0,
  "metrics": 1,
  "history": 1,
  "selected": 1,
  "sigma": 0,
  "doubt": 1,
  "item_nfe": 1,
}


def check_policy(config: refine_lib.RefineConfig) -> None:
  if config.chains is None or config.pick is None or config.accept_below is None:
    raise ValueError(
      "solve runs the adaptive-restart policy: set chains, pick and accept_below "
      f"(got chains={config.chains}, pick={config.pick}, accept_below={config.accept_below}); "
      "refine runs every other configuration"
    )


def solve(
  apply_fn: Callable,
  params,
  key,
  x,
  eligible,
  config: refine_lib.RefineConfig,
  metric_fn: Optional[Callable] = None,
  *,
  metric_params=None,
  item_ids=None,
  slots: int = 64,
  progress: bool = False,
  debug: Optional[bool] = None,
) -> refine_lib.RefineResult:
  """`refine(apply_fn, params, key, x, eligible, config, metric_fn, ...)`'s result for a config
  with chains, pick and accept_below, running each item's chains only until one is accepted.

  x f32[B, H, W, C], eligible bool[B, R] as in refine; `slots` items run per compiled step (any
  count gives the same result; more is faster until the device is full). The result is refine's
  picked result (x, metrics, history, selected, sigma, doubt, chosen, item_nfe, ran), except
  `nfe`: refine counts the calls of its batch (every chain of every item), solve has no such
  batch and reports per round the largest item_nfe, the costliest item alone.
  """
  check_policy(config)
  refine_lib.check_inputs(x, eligible, config)
  eligible = np.asarray(eligible, bool)
  if int(slots) != slots or slots < 1:
    raise ValueError(f"slots must be an integer >= 1, got {slots}")
  x = np.asarray(x)
  b, k = x.shape[0], config.chains
  ids = sampling.check_item_ids(item_ids, b)
  slots = min(int(slots), b)
  threshold = config.accept_below  # the host's alone: one compile serves every threshold
  step_cfg = dataclasses.replace(config, accept_below=None)
  chain_keys = jax.random.split(rng.as_key(key), k)
  step = (
    debug_lib.checked(_slot_step, apply_fn, metric_fn, step_cfg)
    if debug_lib.requested(debug)
    else functools.partial(_slot_step_jit, apply_fn, metric_fn, step_cfg)
  )
  store = None  # RefineResult of numpy arrays with a leading chain axis K, filled per chain run
  last = np.full(b, -1)  # the last chain each item ran
  queue, active = collections.deque(range(b)), []  # items waiting, items in flight
  bar = tqdm(total=b, desc="restarts", unit="item", disable=not progress, leave=False)
  while True:
    while len(active) < slots and queue:
      active.append(queue.popleft())
    if not active:
      break
    size = step_size(len(active), slots)
    items = np.array(active + active[:1] * (size - len(active)))  # spare slots repeat an item
    chain = last[items] + 1
    res = jax.device_get(
      step(params, metric_params, chain_keys, chain, ids[items], x[items], eligible[items])
    )
    if store is None:
      store = _empty_store(res, k, b)
    flying = []
    for s, i in enumerate(active):
      _put(store, res, s, chain[s], i)
      last[i] = chain[s]
      if res.doubt[-1, s] < threshold or chain[s] == k - 1:
        bar.update(1)
      else:
        flying.append(i)
    active = flying
  bar.close()
  ran = np.arange(k)[:, None] <= last[None]
  out = refine_lib.pick_chains(store, jnp.asarray(ran))
  return out.replace(nfe=jnp.max(out.item_nfe, axis=-1))


def step_size(in_flight: int, slots: int) -> int:
  """The slot count of a step: `slots`, halved (rounding up) while the items in flight still
  fit, so the last doubtful items do not pay for a full batch; at most log2(slots) + 1 sizes,
  one compile each."""
  size = slots
  while size > 1 and (size + 1) // 2 >= in_flight:
    size = (size + 1) // 2
  return size


def _empty_store(res, k: int, b: int) -> refine_lib.RefineResult:
  """Per field of a slot step's result, an array with a chain axis K and the batch axis sized
  to all B items (doubt +inf where a chain did not run, counts 0)."""

  def empty(name, a):
    if a is None:
      return None
    shape = list(np.shape(a))
    shape[_BATCH_AXIS[name]] = b
    fill = np.inf if name == "doubt" else 0
    return np.full([k, *shape], fill, np.asarray(a).dtype)

  fields = {n: getattr(res, n) for n in _BATCH_AXIS}
  out = {n: jax.tree.map(functools.partial(empty, n), a) for n, a in fields.items()}
  return refine_lib.RefineResult(nfe=np.zeros([k, *np.shape(res.nfe)], np.int32), **out)


def _put(store, res, s: int, c: int, i: int) -> None:
  """Copy slot s of a step's result into chain c, item i of the store."""
  for name, axis in _BATCH_AXIS.items():
    src, dst = getattr(res, name), getattr(store, name)
    if src is None:
      continue
    for a, d in zip(jax.tree.leaves(src), jax.tree.leaves(dst)):
      d[(c,) + (slice(None),) * axis + (i,)] = np.take(a, s, axis=axis)
