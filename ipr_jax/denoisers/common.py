"""What every denoiser shares: the output record, the time embedding, the pure `apply` builder."""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp
from flax import nnx

LOGVAR_MIN, LOGVAR_MAX = -30.0, 20.0
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def compute_dtype(name: str):
  """The jnp dtype of a config's compute `dtype` name (params always stay float32)."""
  if name not in DTYPES:
    raise ValueError(f"dtype must be one of {tuple(DTYPES)}, got {name!r}")
  return DTYPES[name]


class DenoiserOutput(NamedTuple):
  """velocity f32[B, H, W, C] (u = eps - x); v_interp f32[B, H, W, C] (learned-range weight,
  not clamped); sigma_region f32[B, R] (the model's own uncertainty per region, method 1.3)."""

  velocity: jax.Array
  v_interp: jax.Array
  sigma_region: jax.Array


def check_output(out: DenoiserOutput, z_t, t_region) -> None:
  """The contract of every denoiser: velocity and v_interp f32 like z_t [B, H, W, C], sigma
  f32[B, R] like t_region."""
  chex.assert_equal_shape([out.velocity, out.v_interp, z_t])
  chex.assert_equal_shape([out.sigma_region, t_region])
  chex.assert_type([out.velocity, out.v_interp, out.sigma_region], jnp.float32)


def sigma_from_logvar(logvar):
  """sigma = exp(0.5 logvar), logvar clamped to [-30, 20] as every Gaussian of the spec."""
  return jnp.exp(0.5 * jnp.clip(logvar, LOGVAR_MIN, LOGVAR_MAX))


def sinusoidal_time(t, dim: int = 256):
  """Spec 6.1: a = max(1000 t - 1, 0), e = [cos(a f), sin(a f)], f_i = exp(-ln(1e4) i / (dim/2))."""
  half = dim // 2
  freqs = jnp.exp(-math.log(1e4) * jnp.arange(half, dtype=jnp.float32) / half)
  a = jnp.maximum(1000.0 * t - 1.0, 0.0)[..., None] * freqs
  return jnp.concatenate([jnp.cos(a), jnp.sin(a)], axis=-1)


class TimeEmbedding(nnx.Module):
  """sinusoidal(256) -> Linear -> SiLU -> Linear, applied per token or per pixel."""

  def __init__(self, dim: int, *, rngs: nnx.Rngs, freq_dim: int = 256, dtype=jnp.float32):
    self.freq_dim = freq_dim
    self.fc1 = nnx.Linear(freq_dim, dim, dtype=dtype, rngs=rngs)
    self.fc2 = nnx.Linear(dim, dim, dtype=dtype, rngs=rngs)

  def __call__(self, t):
    return self.fc2(nnx.silu(self.fc1(sinusoidal_time(t, self.freq_dim))))


def dropout(key, x, rate: float):
  """Inverted dropout; identity when key is None or rate is 0 (sampling)."""
  if key is None or rate <= 0.0:
    return x
  keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
  return jnp.where(keep, x / (1.0 - rate), 0.0)


Params = Any
ApplyFn = Callable[..., DenoiserOutput]


def split_module(model: nnx.Module) -> tuple[ApplyFn, Params]:
  """Split an NNX denoiser once into (pure apply, params as a plain dict of arrays).

  apply(params, z_t f32[B,H,W,C], t_region f32[B,R], *, key=None) -> DenoiserOutput merges the
  module inside whatever jit calls it; params are always an argument, never closed over. A key
  turns dropout on (training).
  """
  graphdef, state = nnx.split(model)
  params = nnx.to_pure_dict(state)
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state)

  def apply(params, z_t, t_region, *, key=None):
    filled = jax.tree.map(lambda x: x, abstract)
    nnx.replace_by_pure_dict(filled, params)
    out = nnx.merge(graphdef, filled)(z_t, t_region, key=key)
    if isinstance(out, DenoiserOutput):  # (the evaluators' classifiers share this builder)
      check_output(out, z_t, t_region)
    return out

  return apply, params


def build_module(module_cls, cfg, key) -> tuple[ApplyFn, Params]:
  """split_module(module_cls(cfg)) seeded from `key`; with key None, params are shapes only
  (jax.ShapeDtypeStruct, nothing initialised: a template to load shipped weights into)."""
  if key is None:
    return split_module(nnx.eval_shape(lambda: module_cls(cfg, rngs=nnx.Rngs(0))))
  seed = int(jax.random.randint(key, (), 0, 2**31 - 1))
  return split_module(module_cls(cfg, rngs=nnx.Rngs(seed)))
