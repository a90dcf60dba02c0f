"""Denoisers behind one call signature: apply(params, z_t, t_region, *, key=None) -> DenoiserOutput."""
from __future__ import annotations

from ipr_jax.denoisers.common import DenoiserOutput, build_module, split_module
from ipr_jax.denoisers.transformer import RegionTransformer, TransformerConfig
from ipr_jax.denoisers.unet import UNet, UNetConfig


def build(config, key):
  """Build a denoiser from its config: returns (apply, params). `key` seeds the initial params;
  with key None, params are jax.ShapeDtypeStructs (no initialisation: a template for loading)."""
  if isinstance(config, TransformerConfig):
    module = RegionTransformer
  elif isinstance(config, UNetConfig):
    module = UNet
  else:
    raise ValueError(f"config must be a TransformerConfig or UNetConfig, got {type(config)}")
  return build_module(module, config, key)


__all__ = ["DenoiserOutput", "RegionTransformer", "TransformerConfig", "UNet", "UNetConfig",
           "build", "split_module"]
