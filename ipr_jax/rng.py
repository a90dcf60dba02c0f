"""Keys at the public entry points: new-style `jax.random.key`s, or legacy `PRNGKey` arrays.

Much research code still passes `jax.random.PRNGKey(0)` (uint32[2]); the library's loops split
keys and reshape the result, which only works on typed keys, so every entry point that takes a
key passes it through `as_key` first: legacy keys are wrapped (same bits, so the same streams as
`jax.random.wrap_key_data` gives), typed keys pass through, anything else is a named ValueError.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def as_key(key, name: str = "key"):
  """A typed scalar PRNG key from a typed key or a legacy uint32[2] PRNGKey."""
  if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    if key.shape != ():
      raise ValueError(
        f"{name} must be a single key (shape ()), got a key array of shape {key.shape}"
      )
    return key
  if np.shape(key) == (2,) and np.result_type(key) == np.uint32:
    return jax.random.wrap_key_data(jnp.asarray(key, jnp.uint32))
  raise ValueError(
    f"{name} must be a jax.random.key(...) or a legacy jax.random.PRNGKey(...) "
    f"(uint32[2]), got {type(key).__name__} of shape {np.shape(key)}"
  )
