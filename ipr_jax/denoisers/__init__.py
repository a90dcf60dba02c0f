"""Denoisers behind one call signature: apply(params, z_t, t_region, *, key=None) -> DenoiserOutput.

`KINDS` is the one registry of denoiser kinds: name -> (config dataclass, NNX module). `build`,
shipped-model manifests (`pretrained`) and the experiment configs (`model.kind`) all go through
it, so a new denoiser is one `register(kind, ConfigClass, ModuleClass)` call (the module is an
NNX module built as `ModuleClass(config, rngs=...)` whose call returns a DenoiserOutput).
"""

from __future__ import annotations

import dataclasses

from ipr_jax.denoisers.common import DenoiserOutput, build_module, split_module
from ipr_jax.denoisers.transformer import RegionTransformer, TransformerConfig
from ipr_jax.denoisers.unet import UNet, UNetConfig

KINDS: dict = {}


def register(kind: str, config_cls, module_cls) -> None:
  """Add denoiser `kind` (once per name; a config class belongs to one kind)."""
  if not isinstance(kind, str) or not kind:
    raise ValueError(f"a denoiser kind must be a non-empty string, got {kind!r}")
  if not dataclasses.is_dataclass(config_cls):
    raise ValueError(f"denoiser {kind!r}: the config class must be a dataclass")
  if kind in KINDS and KINDS[kind] != (config_cls, module_cls):
    raise ValueError(f"denoiser kind {kind!r} is already registered")
  for other, (cls, _) in KINDS.items():
    if cls is config_cls and other != kind:
      raise ValueError(f"{config_cls.__name__} is already the config of denoiser {other!r}")
  KINDS[kind] = (config_cls, module_cls)


register("transformer", TransformerConfig, RegionTransformer)
register("unet", UNetConfig, UNet)


def kind_of(config) -> str:
  """The registry name of a denoiser config; ValueError for an unregistered config type."""
  for name, (cfg_cls, _) in KINDS.items():
    if type(config) is cfg_cls:
      return name
  raise ValueError(
    f"config must be one of {[c.__name__ for c, _ in KINDS.values()]}, got {type(config).__name__}"
  )


def make_config(kind: str, **fields):
  """The config dataclass of denoiser `kind` from plain fields (lists become tuples)."""
  if kind not in KINDS:
    raise ValueError(f"denoiser kind must be one of {tuple(KINDS)}, got {kind!r}")
  cfg_cls = KINDS[kind][0]
  names = {f.name for f in dataclasses.fields(cfg_cls)}
  unknown = sorted(set(fields) - names)
  if unknown:
    raise ValueError(f"{cfg_cls.__name__} has no field(s) {unknown}; fields: {sorted(names)}")
  return cfg_cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})


def to_dict(config) -> dict:
  """{kind, **fields} of a denoiser config, JSON-ready (tuples as lists): make_config inverts it."""
  fields = {
    k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()
  }
  return {"kind": kind_of(config), **fields}


def build(config, key):
  """Build a denoiser from its config: returns (apply, params). `key` seeds the initial params;
  with key None, params are jax.ShapeDtypeStructs (no initialisation: a template for loading)."""
  return build_module(KINDS[kind_of(config)][1], config, key)


__all__ = [
  "DenoiserOutput",
  "KINDS",
  "RegionTransformer",
  "TransformerConfig",
  "UNet",
  "UNetConfig",
  "build",
  "kind_of",
  "make_config",
  "register",
  "split_module",
  "to_dict",
]
