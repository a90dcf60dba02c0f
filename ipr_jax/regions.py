"""Region grid of an image: square p x p patches on a (H/p) x (W/p) grid (method 1.1).

Region j runs over the grid in row-major order. Mask convention (method 1.4): an *unknown* region
is one to be generated (mask = 1); a *known* (given) region is held at its value. The public
samplers take `known: bool[B, R]` (True = given), i.e. known = (mask == 0).

Functions take any leading batch dimensions: the last three axes are H, W, C (images) or the
last axis is R (region vectors). chex states each contract against the grid when traced, so a
transposed or mis-sized array fails here, naming its shape, instead of reshaping silently.
"""

from __future__ import annotations

import dataclasses

import chex
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class RegionGrid:
  """Image of `height` x `width` pixels cut into `patch` x `patch` regions."""

  height: int
  width: int
  patch: int

  @property
  def grid_h(self) -> int:
    return self.height // self.patch

  @property
  def grid_w(self) -> int:
    return self.width // self.patch

  @property
  def num_regions(self) -> int:
    return self.grid_h * self.grid_w


def make_grid(height: int, width: int, patch: int) -> RegionGrid:
  """Validated RegionGrid; ValueError if `patch` does not divide the image."""
  for name, v in (("height", height), ("width", width), ("patch", patch)):
    if int(v) != v or v < 1:
      raise ValueError(f"{name} must be a positive integer, got {v!r}")
  if height % patch or width % patch:
    raise ValueError(f"patch={patch} must divide the image size {height}x{width}")
  return RegionGrid(int(height), int(width), int(patch))


def patchify(x, grid: RegionGrid):
  """f32[..., H, W, C] -> f32[..., R, p*p*C] (row-major regions, pixels row-major inside)."""
  chex.assert_shape(x, (..., grid.height, grid.width, None))
  *lead, h, w, c = x.shape
  p = grid.patch
  x = x.reshape(*lead, grid.grid_h, p, grid.grid_w, p, c)
  x = jnp.moveaxis(x, -4, -3)  # [..., gh, gw, p, p, c]
  return x.reshape(*lead, grid.num_regions, p * p * c)


def unpatchify(patches, grid: RegionGrid):
  """f32[..., R, p*p*C] -> f32[..., H, W, C]; inverse of `patchify`."""
  chex.assert_shape(patches, (..., grid.num_regions, None))
  chex.assert_is_divisible(patches.shape[-1], grid.patch * grid.patch)
  *lead, r, d = patches.shape
  p = grid.patch
  c = d // (p * p)
  x = patches.reshape(*lead, grid.grid_h, grid.grid_w, p, p, c)
  x = jnp.moveaxis(x, -3, -4)  # [..., gh, p, gw, p, c]
  return x.reshape(*lead, grid.height, grid.width, c)


def to_pixels(values, grid: RegionGrid):
  """Nearest-neighbour upsampling of per-region values: [..., R] -> [..., H, W, 1] (kron)."""
  chex.assert_shape(values, (..., grid.num_regions))
  *lead, r = values.shape
  v = values.reshape(*lead, grid.grid_h, 1, grid.grid_w, 1, 1)
  v = jnp.broadcast_to(v, (*lead, grid.grid_h, grid.patch, grid.grid_w, grid.patch, 1))
  return v.reshape(*lead, grid.height, grid.width, 1)


def region_mean(pixels, grid: RegionGrid):
  """Average of a per-pixel map over each region: [..., H, W, C] -> [..., R]."""
  return patchify(pixels, grid).mean(axis=-1)


def impose_known(z, known, known_values, grid: RegionGrid):
  """Re-impose givens: z <- known_values where the region is known, else z (method 1.4).
  z, known_values f32[..., H, W, C]; known bool[..., R] with the same leading axes."""
  chex.assert_equal_shape([z, known_values])
  chex.assert_type(known, bool)
  chex.assert_shape(known, (*z.shape[:-3], grid.num_regions))
  return jnp.where(to_pixels(known, grid), known_values, z)


def check_time_map(
  t_region, x, grid: RegionGrid, name: str = "t_region", channels: int | None = None
) -> None:
  """ValueError naming `name` unless t_region is [B, R] for images x of [B, H, W, C] (with
  C = `channels` where the caller knows it, e.g. a denoiser)."""
  c = "C" if channels is None else channels
  if (
    x.ndim != 4
    or x.shape[1:3] != (grid.height, grid.width)
    or (channels is not None and x.shape[-1] != channels)
  ):
    raise ValueError(
      f"image must be [B, H, W, C] = [B, {grid.height}, {grid.width}, {c}], got {x.shape}"
    )
  if tuple(t_region.shape) != (x.shape[0], grid.num_regions):
    raise ValueError(
      f"{name} must have shape [B, R] = {(x.shape[0], grid.num_regions)}, "
      f"got {tuple(t_region.shape)}"
    )
