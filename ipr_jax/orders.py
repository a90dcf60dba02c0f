"""Generation orders of the sequential sampler (method 3.1): the one registry of named orders.

An order scores the regions of one sample at step r, `score(key, r, sigma f32[R]) -> f32[R]`
(lower = generated earlier; `sigma` is the model's current doubt about each region). The
sampler starts the lowest-scored waiting regions when a block starts. A `one_block` order starts
every unknown region at once (plan n = 1). `SamplerConfig(order=name)` accepts any registered
name:

    orders.register("reverse_raster", lambda key, r, sigma: -jnp.arange(sigma.shape[0], dtype=jnp.float32))
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from ipr_jax import registry


class Order(NamedTuple):
  score: Callable
  one_block: bool = False


_ORDERS = registry.Registry("order")


def register(name: str, fn: Callable | None = None, *, one_block: bool = False):
  """Register `fn` as order `name` (usable as a decorator). A name is registered once: the
  jitted sampler is cached per config, which holds only the name."""

  def add(f):
    if not callable(f):
      raise ValueError(f"order {name!r} must be callable, got {type(f).__name__}")
    _ORDERS.add(name, Order(f, bool(one_block)))
    return f

  return add if fn is None else add(fn)


names, get = _ORDERS.names, _ORDERS.get


@register("greedy")
def greedy(key, r, sigma):
  """The SRM order: the region the model is surest about first."""
  del key, r
  return sigma


@register("random")
def random(key, r, sigma):
  return jax.random.uniform(jax.random.fold_in(key, r), sigma.shape)


def _index(key, r, sigma):
  del key, r
  return jnp.arange(sigma.shape[0], dtype=jnp.float32)


register("raster", _index)
register("parallel", _index, one_block=True)
