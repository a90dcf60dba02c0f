"""Frozen config dataclasses <-> plain nested dicts, one recursive pair for every config.

`to_dict(cfg)` gives a dict of the dataclass's fields (nested dataclasses as nested dicts,
tuples kept); `from_dict(cls, d)` builds `cls` back, recursing into fields whose type is a
dataclass, turning lists (JSON) into tuples and other mappings into dicts, and taking a field's default where `d` omits it.
A key that is not a field is a ValueError listing the fields, so the dataclass is the only place
a knob's name and default are declared. Experiment configs, manifests' recommended settings and
results files all go through this pair.
"""

from __future__ import annotations

import dataclasses
import typing


def to_dict(cfg) -> dict:
  """{field: value} of dataclass instance `cfg`, nested dataclasses as nested dicts."""
  if not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
    raise TypeError(f"to_dict takes a dataclass instance, got {type(cfg).__name__}")
  return {
    f.name: to_dict(v) if dataclasses.is_dataclass(v) else v
    for f in dataclasses.fields(cfg)
    for v in [getattr(cfg, f.name)]
  }


def _dataclass_type(hint):
  """The dataclass in a field's type hint (X, Optional[X]), else None."""
  if dataclasses.is_dataclass(hint):
    return hint
  args = [a for a in typing.get_args(hint) if a is not type(None)]
  return args[0] if len(args) == 1 and dataclasses.is_dataclass(args[0]) else None


def _plain(value):
  """Lists (JSON) as tuples, mappings (a ConfigDict) as dicts, recursively."""
  if isinstance(value, (list, tuple)):
    return tuple(_plain(v) for v in value)
  if hasattr(value, "keys") and not dataclasses.is_dataclass(value):
    return {k: _plain(value[k]) for k in value.keys()}
  return value


def from_dict(cls, d, where: str | None = None):
  """`cls(**d)` with nested dataclass fields built from nested mappings (a ConfigDict or a dict).
  ValueError naming `where` (default: the class) and the fields when `d` has a key `cls` lacks;
  the dataclass's own checks (`__post_init__`) run as usual."""
  where = where or cls.__name__
  if not hasattr(d, "keys"):
    raise ValueError(f"{where} must be a mapping of {cls.__name__} fields, got {type(d).__name__}")
  fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
  unknown = sorted(set(d.keys()) - set(fields))
  if unknown:
    raise ValueError(
      f"{where} has key(s) {unknown} that {cls.__name__} does not have; its fields: "
      f"{sorted(fields)}"
    )
  hints = typing.get_type_hints(cls)
  kwargs = {}
  for name in d.keys():
    value, inner = d[name], _dataclass_type(hints.get(name))
    if inner is not None and value is not None and not dataclasses.is_dataclass(value):
      value = from_dict(inner, value, f"{where}.{name}")
    kwargs[name] = _plain(value)
  return cls(**kwargs)
