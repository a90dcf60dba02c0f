"""Region selectors of IPR rounds (method 4): the one registry of named selection rules.

A selector scores the regions of one sample, `score(key, sigma f32[R], config) -> f32[R]`
(higher = re-noised first; `sigma` is the model's own doubt about each region from its last
pass, `config` the RefineConfig). `refine` masks the regions that are not eligible and keeps the
top m, so Gumbel-perturbed log-weights (`log w + Gumbel`) sample m regions without replacement
with probability proportional to w. `RefineConfig(selector=name)` accepts any registered name:

    @selectors.register("doubt_squared")
    def doubt_squared(key, sigma, config):
      return jax.random.gumbel(key, sigma.shape) + 2.0 * jnp.log(jnp.maximum(sigma, 1e-30))
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from ipr_jax import registry

_SELECTORS = registry.Registry("selector")


def register(name: str, fn: Callable | None = None):
  """Register `fn` as selector `name` (usable as a decorator). A name is registered once: the
  jitted refine is cached per config, which holds only the name."""

  def add(f):
    if not callable(f):
      raise ValueError(f"selector {name!r} must be callable, got {type(f).__name__}")
    return _SELECTORS.add(name, f)

  return add if fn is None else add(fn)


names, get = _SELECTORS.names, _SELECTORS.get


@register("uniform")
def uniform(key, sigma, config):
  """The paper's: every eligible region equally likely."""
  del config
  return jax.random.gumbel(key, sigma.shape)


@register("uncertainty")
def uncertainty(key, sigma, config):
  """Ours: weights sigma ** selector_power, the model's doubt from its last pass."""
  return jax.random.gumbel(key, sigma.shape) + config.selector_power * jnp.log(
    jnp.maximum(sigma, 1e-30)
  )
