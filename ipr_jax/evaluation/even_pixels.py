"""Even Pixels metrics (method 5.2) in jnp over images f32[..., H, W, 3] in [-1, 1]."""

from __future__ import annotations

import jax.numpy as jnp

BINS = 256


def rgb_to_hsv(rgb):
  """matplotlib.colors.rgb_to_hsv semantics (blue beats green beats red on ties)."""
  r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
  v = jnp.max(rgb, axis=-1)
  delta = v - jnp.min(rgb, axis=-1)
  pos = delta > 0
  safe = jnp.where(pos, delta, 1.0)
  s = jnp.where(v > 0, delta / jnp.where(v > 0, v, 1.0), 0.0)
  h = jnp.where(r == v, (g - b) / safe, 0.0)
  h = jnp.where(g == v, 2.0 + (b - r) / safe, h)
  h = jnp.where(b == v, 4.0 + (r - g) / safe, h)
  h = jnp.where(pos, (h / 6.0) % 1.0, 0.0)
  return jnp.stack([h, s, v], axis=-1)


def _check(x):
  if x.ndim < 3 or x.shape[-1] != 3:
    raise ValueError(f"Even Pixels images must be [..., H, W, 3], got {x.shape}")


def color_imbalance_count(x):
  """|pixels in the half-circle of hues around the dominant hue - H W / 2|, i32[...]."""
  _check(x)
  hsv = rgb_to_hsv(jnp.clip((x + 1.0) / 2.0, 0.0, 1.0))
  lead = x.shape[:-3]
  hue = hsv[..., 0].reshape(*lead, -1)
  bins = jnp.clip(jnp.floor(hue * BINS).astype(jnp.int32), 0, BINS - 1)
  hist = (bins[..., None] == jnp.arange(BINS)).sum(axis=-2)
  p1 = jnp.argmax(hist, axis=-1)
  p2 = (p1 + BINS // 2) % BINS
  lo, hi = jnp.minimum(p1, p2), jnp.maximum(p1, p2)
  b1 = (lo + hi) // 2
  b2 = (lo + hi + BINS) // 2
  b2 = jnp.where(b2 > BINS, b2 - BINS, b2)
  b1, b2 = jnp.minimum(b1, b2), jnp.maximum(b1, b2)
  cs = jnp.concatenate([jnp.zeros((*lead, 1), hist.dtype), jnp.cumsum(hist, axis=-1)], axis=-1)
  inside = (
    jnp.take_along_axis(cs, b2[..., None], -1)[..., 0]
    - jnp.take_along_axis(cs, b1[..., None], -1)[..., 0]
  )
  return jnp.abs(inside - hue.shape[-1] // 2)


def metrics(x):
  """Per-image {'color_imbalance_count', 'is_color_count_even', 'saturation_std', 'value_std'}."""
  err = color_imbalance_count(x)
  hsv = rgb_to_hsv(jnp.clip((x + 1.0) / 2.0, 0.0, 1.0))
  lead = x.shape[:-3]
  return {
    "color_imbalance_count": err.astype(jnp.float32),
    "is_color_count_even": (err == 0).astype(jnp.float32),
    "saturation_std": hsv[..., 1].reshape(*lead, -1).std(axis=-1),
    "value_std": hsv[..., 2].reshape(*lead, -1).std(axis=-1),
  }
