"""The SRM UNet (method 6.1) with per-pixel time conditioning, as an NNX module.

The time map is per pixel: in every ResBlock the [B, H, W] map is resized bilinearly (half-pixel
centres, no antialias) to the block's resolution, embedded per location by the one shared
TimeEmbedding MLP, passed through SiLU -> Linear(C_out) and added before the second GroupNorm.
Output: GN -> SiLU -> zero-initialised conv3x3 to 2C + 1 channels = (velocity, raw v, logvar);
logvar is averaged per region (geometric mean of sigma), v_interp = (raw + 1) / 2.

Mixed precision: with `dtype="bfloat16"` convolutions, linears and activations run in bf16
while params stay float32; GroupNorm, the attention softmax and the outputs are float32.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
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
class UNetConfig:
  """widths per level; attention at the levels flagged in `attention`; paper sizes in method 6.2."""

  height: int
  width: int
  channels: int
  patch: int
  widths: tuple = (32, 64)
  attention: tuple = (False, True)
  num_blocks: int = 2
  time_dim: int = 512  # width of the shared time MLP (t_emb_dim)
  time_freq_dim: int = 256  # sinusoid size fed to it (d_emb)
  head_channels: int = 64
  groups: int = 32
  dropout: float = 0.1
  dtype: str = "float32"  # compute dtype: float32 or bfloat16 (params stay float32)


def _conv(cin, cout, rngs, k=3, zero=False, stride=1, dtype=jnp.float32):
  init = nnx.initializers.zeros if zero else nnx.initializers.lecun_normal()
  pad = ((k // 2, k // 2), (k // 2, k // 2))
  return nnx.Conv(
    cin,
    cout,
    (k, k),
    strides=(stride, stride),
    padding=pad,
    kernel_init=init,
    dtype=dtype,
    rngs=rngs,
  )


def _norm(c, groups, rngs):
  """GroupNorm computed in float32 (callers cast its output to the compute dtype)."""
  return nnx.GroupNorm(c, num_groups=min(groups, c), epsilon=1e-5, dtype=jnp.float32, rngs=rngs)


def _resize_time(t_pix, h, w):
  """Bilinear resize of f32[B, H, W] (half-pixel centres, no antialias), as torch interpolate."""
  if t_pix.shape[1:] == (h, w):
    return t_pix
  return jax.image.resize(t_pix, (t_pix.shape[0], h, w), "bilinear", antialias=False)


def _nearest_to(x, h, w):
  """PyTorch nearest upsampling to an exact size: source index floor(i * in / out)."""
  ih, iw = x.shape[1:3]
  rows = (jnp.arange(h) * ih) // h
  cols = (jnp.arange(w) * iw) // w
  return x[:, rows][:, :, cols]


class ResBlock(nnx.Module):
  def __init__(self, cin, cout, cfg: UNetConfig, *, rngs):
    self.rate, dt = cfg.dropout, compute_dtype(cfg.dtype)
    self.dtype = dt
    self.n1, self.n2 = _norm(cin, cfg.groups, rngs), _norm(cout, cfg.groups, rngs)
    self.c1 = _conv(cin, cout, rngs, dtype=dt)
    self.c2 = _conv(cout, cout, rngs, zero=True, dtype=dt)
    self.temb = nnx.Linear(cfg.time_dim, cout, dtype=dt, rngs=rngs)
    self.skip = _conv(cin, cout, rngs, k=1, dtype=dt) if cin != cout else None

  def __call__(self, x, t_pix, time_mlp, key):
    h = self.c1(nnx.silu(self.n1(x).astype(self.dtype)))
    t = _resize_time(t_pix, h.shape[1], h.shape[2])
    h = h + self.temb(nnx.silu(time_mlp(t)))
    h = self.c2(dropout(key, nnx.silu(self.n2(h).astype(self.dtype)), self.rate))
    return h + (x if self.skip is None else self.skip(x))


class Attention(nnx.Module):
  def __init__(self, c, cfg: UNetConfig, *, rngs):
    self.heads, dt = max(1, c // cfg.head_channels), compute_dtype(cfg.dtype)
    self.dtype = dt
    self.norm = _norm(c, cfg.groups, rngs)
    self.qkv = _conv(c, 3 * c, rngs, k=1, dtype=dt)
    self.proj = _conv(c, c, rngs, k=1, zero=True, dtype=dt)

  def __call__(self, x):
    b, h, w, c = x.shape
    d = c // self.heads
    qkv = self.qkv(self.norm(x).astype(self.dtype))
    qkv = qkv.reshape(b, h * w, self.heads, 3 * d)  # legacy [q|k|v] per head
    q, k, v = jnp.split(jnp.swapaxes(qkv, 1, 2), 3, axis=-1)
    scale = d**-0.25
    logits = (q * scale) @ jnp.swapaxes(k * scale, -1, -2)
    out = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(self.dtype) @ v
    return x + self.proj(jnp.swapaxes(out, 1, 2).reshape(b, h, w, c))


class UNet(nnx.Module):
  def __init__(self, cfg: UNetConfig, *, rngs: nnx.Rngs):
    if len(cfg.attention) != len(cfg.widths):
      raise ValueError(
        f"attention flags ({len(cfg.attention)}) must match widths ({len(cfg.widths)})"
      )
    self.cfg = cfg
    self.grid = regions.make_grid(cfg.height, cfg.width, cfg.patch)
    dt = self.dtype = compute_dtype(cfg.dtype)
    self.time = TimeEmbedding(cfg.time_dim, rngs=rngs, freq_dim=cfg.time_freq_dim, dtype=dt)
    ws = cfg.widths
    self.conv_in = _conv(cfg.channels, ws[0], rngs, dtype=dt)
    down, skips, c = [], [ws[0]], ws[0]
    for lvl, w in enumerate(ws):
      for _ in range(cfg.num_blocks):
        down.append(ResBlock(c, w, cfg, rngs=rngs))
        down.append(Attention(w, cfg, rngs=rngs) if cfg.attention[lvl] else None)
        c = w
        skips.append(c)
      if lvl < len(ws) - 1:
        down.append(_conv(c, c, rngs, stride=2, dtype=dt))
        skips.append(c)
    self.down = nnx.List(down)
    self.mid = nnx.List(
      [ResBlock(c, c, cfg, rngs=rngs), Attention(c, cfg, rngs=rngs), ResBlock(c, c, cfg, rngs=rngs)]
    )
    up = []
    for lvl in reversed(range(len(ws))):
      for _ in range(cfg.num_blocks + 1):
        up.append(ResBlock(c + skips.pop(), ws[lvl], cfg, rngs=rngs))
        up.append(Attention(ws[lvl], cfg, rngs=rngs) if cfg.attention[lvl] else None)
        c = ws[lvl]
      if lvl > 0:
        up.append(_conv(c, c, rngs, dtype=dt))
    self.up = nnx.List(up)
    self.norm_out = _norm(c, cfg.groups, rngs)
    self.conv_out = _conv(c, 2 * cfg.channels + 1, rngs, zero=True, dtype=dt)

  def __call__(self, z_t, t_region, *, key=None):
    """z_t f32[B, H, W, C], t_region f32[B, R] -> DenoiserOutput."""
    cfg, grid = self.cfg, self.grid
    regions.check_time_map(t_region, z_t, grid, channels=cfg.channels)
    t_pix = regions.to_pixels(t_region, grid)[..., 0]
    keys = iter(jax.random.split(key, 4 * len(self.down) + 64)) if key is not None else None
    nk = lambda: None if keys is None else next(keys)
    h = self.conv_in(z_t)
    hs, i, n_levels = [h], 0, len(cfg.widths)
    for lvl in range(n_levels):
      for _ in range(cfg.num_blocks):
        h = self.down[i](h, t_pix, self.time, nk())
        if self.down[i + 1] is not None:
          h = self.down[i + 1](h)
        i += 2
        hs.append(h)
      if lvl < n_levels - 1:
        h = self.down[i](h)
        i += 1
        hs.append(h)
    h = self.mid[0](h, t_pix, self.time, nk())
    h = self.mid[2](self.mid[1](h), t_pix, self.time, nk())
    i = 0
    for lvl in reversed(range(n_levels)):
      for _ in range(cfg.num_blocks + 1):
        h = self.up[i](jnp.concatenate([h, hs.pop()], axis=-1), t_pix, self.time, nk())
        if self.up[i + 1] is not None:
          h = self.up[i + 1](h)
        i += 2
      if lvl > 0:
        h = self.up[i](_nearest_to(h, hs[-1].shape[1], hs[-1].shape[2]))
        i += 1
    out = self.conv_out(nnx.silu(self.norm_out(h).astype(self.dtype))).astype(jnp.float32)
    c = cfg.channels
    logvar = regions.region_mean(out[..., 2 * c :], grid)
    return DenoiserOutput(
      out[..., :c], (out[..., c : 2 * c] + 1.0) / 2.0, sigma_from_logvar(logvar)
    )
