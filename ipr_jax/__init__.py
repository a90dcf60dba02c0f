"""ipr_jax: sequential diffusion with per-region noise levels (SRM) and Iterative Partial
Refinement (IPR) in JAX/Flax. See README.md for the one-glance example; comments cite the maths
as `method N.M`, the sections of docs/method.md."""

from ipr_jax import (
  checkpoints,
  debug,
  flow,
  graphs,
  host_loop,
  latents,
  losses,
  pretrained,
  refine,
  regions,
  sampling,
  sharding,
  time_sampling,
  training,
  typicality,
)
from ipr_jax.denoisers import DenoiserOutput, TransformerConfig, UNetConfig, build
from ipr_jax.regions import RegionGrid, make_grid

__all__ = [
  "DenoiserOutput",
  "RegionGrid",
  "TransformerConfig",
  "UNetConfig",
  "build",
  "checkpoints",
  "debug",
  "flow",
  "graphs",
  "host_loop",
  "latents",
  "losses",
  "make_grid",
  "pretrained",
  "refine",
  "regions",
  "sampling",
  "sharding",
  "time_sampling",
  "training",
  "typicality",
]
