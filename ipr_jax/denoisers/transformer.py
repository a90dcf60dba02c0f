"""Region transformer: one token per region, per-token time conditioning by adaLN.

Tokens are the region's values (a p x p x C patch, or a C-vector for 1 x 1 regions), embedded
linearly, plus learned position embeddings (one table per position family, e.g. Sudoku row,
column and box). Each block: adaLN-modulated attention (optionally masked by a region dependency
graph) and MLP, with zero-initialised gates. The head maps each token back to its region:
velocity (p p C), raw v (p p C) and one log-variance, zero-initialised so that at init
velocity = 0, v_interp = 0.5, sigma = 1 (method 1.3).

The head is linear in the token, so without help a region's velocity lies in a fixed
dim-dimensional subspace of its p p C values: a transformer narrower than its patch cannot remove
the noise outside that subspace (docs/results/even_pixels.md measured it). `skip=True` adds a
z_t skip: the token also yields one gain per channel, g (zero at init), and velocity += g * z_t
over the region's pixels. Outside the head's span the best velocity given z_t is such a gain
times z_t (for data with little energy there, about 1/t), so a narrow head then suffices.

`pixel_head=n > 0` adds a per-pixel MLP with n hidden units, one set of weights shared by every
pixel of every region: its input is the token's final state, the pixel's own z_t and a learned
embedding of the pixel's place in its patch; its output (zero at init) adds to the pixel's
velocity. The linear head learns a separate map from the token for every pixel position, and
the skip only scales z_t; a per-pixel decision (which of two hues a noisy pixel is,
docs/results/even_pixels.md) is one nonlinear function of the pixel and its context, learnt once
for all pixels here.

Mixed precision: with `dtype="bfloat16"` the matmuls and activations run in bf16 while params
stay float32; LayerNorm, softmax and the outputs (velocity, v, sigma) are float32.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ipr_jax import regions
from ipr_jax.denoisers.common import (
  DenoiserOutput,
  TimeEmbedding,
  compute_dtype,
  dropout,
  sigma_from_logvar,
)


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
  """Static architecture. position_ids: tuple of int tuples [R] (default: one id per region);
  attention_graph: bool tuple-of-tuples [R, R] or None for full attention."""

  height: int
  width: int
  channels: int
  patch: int = 1
  dim: int = 64
  depth: int = 4
  heads: int = 4
  mlp_ratio: int = 4
  dropout: float = 0.0
  position_ids: Optional[tuple] = None
  attention_graph: Optional[tuple] = None
  dtype: str = "float32"  # compute dtype: float32 or bfloat16 (params stay float32)
  skip: bool = False  # velocity += per-region, per-channel gain (from the token) * z_t
  pixel_head: int = 0  # > 0: hidden units of a per-pixel MLP adding to the velocity


def _zeros_linear(din, dout, rngs, dtype):
  return nnx.Linear(din, dout, kernel_init=nnx.initializers.zeros, dtype=dtype, rngs=rngs)


def _layer_norm(d, rngs):
  return nnx.LayerNorm(d, use_scale=False, use_bias=False, dtype=jnp.float32, rngs=rngs)


def _modulate(x, shift, scale):
  return x * (1.0 + scale) + shift


class Block(nnx.Module):
  def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs):
    d, dt = cfg.dim, compute_dtype(cfg.dtype)
    self.heads, self.rate, self.dtype = cfg.heads, cfg.dropout, dt
    self.norm1, self.norm2 = _layer_norm(d, rngs), _layer_norm(d, rngs)
    self.qkv = nnx.Linear(d, 3 * d, dtype=dt, rngs=rngs)
    self.proj = nnx.Linear(d, d, dtype=dt, rngs=rngs)
    self.fc1 = nnx.Linear(d, cfg.mlp_ratio * d, dtype=dt, rngs=rngs)
    self.fc2 = nnx.Linear(cfg.mlp_ratio * d, d, dtype=dt, rngs=rngs)
    self.ada = _zeros_linear(d, 6 * d, rngs, dt)

  def attend(self, x, mask):
    """Head-major attention: q @ k^T on [B, heads, R, d] (4x faster on XLA:CPU than einsum)."""
    b, r, d = x.shape
    qkv = self.qkv(x).reshape(b, r, 3, self.heads, d // self.heads)
    q, k, v = jnp.transpose(qkv, (2, 0, 3, 1, 4))
    logits = (q @ jnp.swapaxes(k, -1, -2)).astype(jnp.float32) * (d // self.heads) ** -0.5
    if mask is not None:
      logits = jnp.where(mask, logits, jnp.finfo(logits.dtype).min)
    out = jax.nn.softmax(logits, axis=-1).astype(self.dtype) @ v
    return self.proj(jnp.swapaxes(out, 1, 2).reshape(b, r, d))

  def __call__(self, x, cond, mask, key):
    s1, c1, g1, s2, c2, g2 = jnp.split(self.ada(cond), 6, axis=-1)
    k1, k2 = (None, None) if key is None else jax.random.split(key)
    norm = lambda n, s, c: _modulate(n(x).astype(self.dtype), s, c)
    x = x + g1 * dropout(k1, self.attend(norm(self.norm1, s1, c1), mask), self.rate)
    h = self.fc2(nnx.gelu(self.fc1(norm(self.norm2, s2, c2))))
    return x + g2 * dropout(k2, h, self.rate)


class RegionTransformer(nnx.Module):
  def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    self.grid = regions.make_grid(cfg.height, cfg.width, cfg.patch)
    if cfg.dim % cfg.heads:
      raise ValueError(f"dim={cfg.dim} must be divisible by heads={cfg.heads}")
    r = self.grid.num_regions
    pos = cfg.position_ids if cfg.position_ids is not None else (tuple(range(r)),)
    for ids in pos:
      if len(ids) != r:
        raise ValueError(f"position_ids entries must have length R={r}, got {len(ids)}")
    if cfg.attention_graph is not None and np.shape(cfg.attention_graph) != (r, r):
      raise ValueError(
        f"attention_graph must be [R, R] = [{r}, {r}], got {np.shape(cfg.attention_graph)}"
      )
    self.pos_ids = tuple(tuple(int(i) for i in ids) for ids in pos)
    token = cfg.patch * cfg.patch * cfg.channels
    dt = self.dtype = compute_dtype(cfg.dtype)
    self.embed = nnx.Linear(token, cfg.dim, dtype=dt, rngs=rngs)
    self.pos = nnx.List(
      [nnx.Embed(max(ids) + 1, cfg.dim, dtype=dt, rngs=rngs) for ids in self.pos_ids]
    )
    self.time = TimeEmbedding(cfg.dim, rngs=rngs, dtype=dt)
    self.blocks = nnx.List([Block(cfg, rngs=rngs) for _ in range(cfg.depth)])
    self.norm = _layer_norm(cfg.dim, rngs)
    self.ada = _zeros_linear(cfg.dim, 2 * cfg.dim, rngs, dt)
    self.head = _zeros_linear(cfg.dim, 2 * token + 1, rngs, dt)
    if cfg.skip:
      self.skip = _zeros_linear(cfg.dim, cfg.channels, rngs, dt)
    if cfg.pixel_head < 0:
      raise ValueError(f"pixel_head must be >= 0 (0: none), got {cfg.pixel_head}")
    if cfg.pixel_head:
      n = cfg.pixel_head
      self.pixel_token = nnx.Linear(cfg.dim, n, dtype=dt, rngs=rngs)
      self.pixel_value = nnx.Linear(cfg.channels, n, use_bias=False, dtype=dt, rngs=rngs)
      self.pixel_place = nnx.Param(
        nnx.initializers.normal(0.02)(rngs.params(), (cfg.patch * cfg.patch, n))
      )
      self.pixel_out = _zeros_linear(n, cfg.channels, rngs, dt)

  def __call__(self, z_t, t_region, *, key=None):
    """z_t f32[B, H, W, C], t_region f32[B, R] -> DenoiserOutput."""
    cfg, grid = self.cfg, self.grid
    regions.check_time_map(t_region, z_t, grid, channels=cfg.channels)
    patches = regions.patchify(z_t, grid)  # [B, R, p p C]
    x = self.embed(patches)
    for table, ids in zip(self.pos, self.pos_ids):
      x = x + table(jnp.asarray(ids, jnp.int32))[None]
    cond = nnx.silu(self.time(t_region))
    mask = None if cfg.attention_graph is None else jnp.asarray(cfg.attention_graph, bool)
    for i, block in enumerate(self.blocks):
      x = block(x, cond, mask, None if key is None else jax.random.fold_in(key, i))
    shift, scale = jnp.split(self.ada(cond), 2, axis=-1)
    h = _modulate(self.norm(x).astype(self.dtype), shift, scale)
    out = self.head(h).astype(jnp.float32)
    token = cfg.patch * cfg.patch * cfg.channels
    velocity = regions.unpatchify(out[..., :token], grid)
    if cfg.skip:  # gain [B, R, C] spread over each region's pixels
      gain = jnp.tile(self.skip(h).astype(jnp.float32), (1, 1, cfg.patch * cfg.patch))
      velocity = velocity + regions.unpatchify(gain, grid) * z_t
    if cfg.pixel_head:  # [B, R, p p, n]: token state + the pixel's z_t + its place, per pixel
      pixels = patches.reshape(*h.shape[:2], -1, cfg.channels)
      a = (
        self.pixel_token(h)[:, :, None]
        + self.pixel_value(pixels.astype(self.dtype))
        + self.pixel_place[...].astype(self.dtype)
      )
      pv = self.pixel_out(nnx.gelu(a)).astype(jnp.float32).reshape(*h.shape[:2], token)
      velocity = velocity + regions.unpatchify(pv, grid)
    v_interp = (regions.unpatchify(out[..., token : 2 * token], grid) + 1.0) / 2.0
    return DenoiserOutput(velocity, v_interp, sigma_from_logvar(out[..., -1]))
