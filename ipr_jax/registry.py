"""Named extension points: one small registry type behind selectors, orders and benchmarks.

A name is registered once: the jitted loops are cached per config, which holds only the name,
so a second, different entry under a registered name is a ValueError (registering the same
entry again is a no-op, e.g. a module imported twice).
"""

from __future__ import annotations


class Registry:
  """Entries of one kind ("selector", "order", "benchmark") by name, in registration order."""

  def __init__(self, kind: str):
    self.kind = kind
    self._entries: dict = {}

  def add(self, name: str, entry):
    """Register `entry` under `name` and return it."""
    if not isinstance(name, str) or not name:
      raise ValueError(f"a {self.kind} name must be a non-empty string, got {name!r}")
    if name in self._entries and self._entries[name] != entry:
      raise ValueError(f"{self.kind} {name!r} is already registered")
    self._entries[name] = entry
    return entry

  def names(self) -> tuple:
    return tuple(self._entries)

  def get(self, name: str):
    """The entry of `name`; ValueError naming the registered names otherwise."""
    if name not in self._entries:
      raise ValueError(f"{self.kind} must be one of {self.names()}, got {name!r}")
    return self._entries[name]
