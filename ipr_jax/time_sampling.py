"""Training noise-level samplers (method 2): per-region times t and loss weights w, f32[B, R].

- `shared`: one t ~ U(0, 1) per image, w = 1 (image-level baseline).
- `independent`: t_j ~ U(0, 1) i.i.d. per region, w = 1 (diffusion-forcing ablation).
- `mean_beta`: draw a mean m ~ U(0, 1), split the total m R recursively with Beta draws so every
  value stays in [0, 1], permute per image; exact mean preservation. Loss weights are the inverse
  of the marginal density of t (`mean_beta_density`), computed once and passed in as an array.
- `board_beta` (not in the papers; the recipe of `docs/results/sudoku_symbolic.md`): one board mean
  m ~ U(0.01, 0.99) per image, then t_j ~ Beta(c m, c (1 - m)) i.i.d. per region (c =
  `concentration`), w = 1. The mean is preserved only in expectation; regions of one image
  share a noise scale, as in sampling, without the recursive split.
- `add_zeros` (method 2): zero a random prefix of the shuffled vector (t = 0 and w = 0), then
  reshuffle, to teach conditioning on clean regions. The prefix is a fraction u ~ U(0, 1) of the
  regions (the spec); `zeros_power` a != 1 (not in the spec) draws it as u ** (1 / a) instead,
  mean a / (a + 1): a > 1 trains more often with only a few regions left to generate, the regime
  of IPR rounds and of the end of a sequential pass.
"""

from __future__ import annotations

import dataclasses
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np

KINDS = ("shared", "independent", "mean_beta", "board_beta")
BOARD_MEAN_MARGIN = 0.01  # board_beta: m ~ U(margin, 1 - margin) keeps both Beta shapes > 0
NUM_BINS = 1000


@dataclasses.dataclass(frozen=True)
class TimeSamplerConfig:
  kind: str = "mean_beta"
  sharpness: float = 1.0  # mean_beta's split concentration factor (method 2)
  add_zeros: bool = False
  concentration: float = 20.0  # board_beta's c
  zeros_power: float = 1.0  # add_zeros' cleaned fraction u ** (1 / zeros_power); 1 = the papers'

  def __post_init__(self):
    if self.kind not in KINDS:
      raise ValueError(f"time sampler kind must be one of {KINDS}, got {self.kind!r}")
    if self.sharpness <= 0:
      raise ValueError(f"sharpness must be > 0, got {self.sharpness}")
    if not self.concentration > 0:
      raise ValueError(f"concentration must be > 0, got {self.concentration}")
    if not self.zeros_power > 0:
      raise ValueError(f"zeros_power must be > 0, got {self.zeros_power}")
    if self.zeros_power != 1.0 and not self.add_zeros:
      raise ValueError(
        f"zeros_power={self.zeros_power} shapes add_zeros' draw, but add_zeros "
        "is off: set add_zeros=True or zeros_power=1"
      )


def beta_concentration(d: int, sharpness: float) -> float:
  """c_d = (d - 1 - (d mod 2))^1.05 * sharpness (method 2)."""
  return float((d - 1 - (d % 2)) ** 1.05 * sharpness)


def _split_nodes(d: int, out: list) -> None:
  """Preorder list of the internal nodes' sizes of the recursive split of d cells."""
  if d > 1:
    out.append(d)
    _split_nodes(d // 2, out)
    _split_nodes(d - d // 2, out)


def _split(total, d: int, betas, cursor: list):
  """Recursive split of f32[B] totals into f32[B, d] values in [0, 1] summing to total.

  `betas` f32[B, nodes] holds one Beta(c_d, c_d) draw per image and internal node (preorder),
  drawn in a single call because the draws do not depend on the totals.
  """
  if d == 1:
    return total[:, None]
  h = d // 2
  hi1 = jnp.minimum(total, h)
  hi2 = jnp.minimum(total, d - h)
  lo1 = jnp.maximum(total - hi2, 0.0)
  beta = betas[:, cursor[0]]
  cursor[0] += 1
  s1 = lo1 + beta * (hi1 - lo1)
  s2 = total - s1
  return jnp.concatenate([_split(s1, h, betas, cursor), _split(s2, d - h, betas, cursor)], axis=-1)


def _shuffle(key, v):
  """Independent random permutation of each row of f32[B, R]."""
  order = jnp.argsort(jax.random.uniform(key, v.shape), axis=-1)
  return jnp.take_along_axis(v, order, axis=-1)


def mean_beta_raw(key, batch: int, num_regions: int, sharpness: float):
  """Steps 1-3 of method 2 (no weights, no add_zeros): returns (t f32[B, R], m f32[B])."""
  k_mean, k_split, k_perm = jax.random.split(key, 3)
  m = jax.random.uniform(k_mean, (batch,))
  nodes: list = []
  _split_nodes(num_regions, nodes)
  if nodes:
    conc = jnp.asarray([beta_concentration(d, sharpness) for d in nodes], jnp.float32)
    betas = jax.random.beta(k_split, conc, conc, (batch, len(nodes)))
  else:
    betas = jnp.zeros((batch, 0))
  t = _split(m * num_regions, num_regions, betas, [0])
  return jnp.clip(_shuffle(k_perm, t), 0.0, 1.0), m


def board_beta_raw(key, batch: int, num_regions: int, concentration: float):
  """t f32[B, R]: t_j ~ Beta(c m, c (1 - m)) i.i.d. around one m ~ U(0.01, 0.99) per image."""
  k_mean, k_t = jax.random.split(key)
  m = jax.random.uniform(k_mean, (batch, 1), minval=BOARD_MEAN_MARGIN, maxval=1 - BOARD_MEAN_MARGIN)
  a = jnp.broadcast_to(concentration * m, (batch, num_regions))
  return jax.random.beta(k_t, a, concentration - a)


def mean_beta_density(
  key, num_regions: int, sharpness: float, num_images: int = 80_000, chunk: int = 4096
) -> np.ndarray:
  """Marginal density of t under mean_beta on 1000 bins, normalised to mean 1 (method 2)."""
  hist = np.zeros(NUM_BINS, np.float64)
  draw = jax.jit(mean_beta_raw, static_argnums=(1, 2, 3))
  for i in range(math.ceil(num_images / chunk)):
    n = min(chunk, num_images - i * chunk)
    t, _ = draw(jax.random.fold_in(key, i), n, num_regions, sharpness)
    bins = np.clip(np.floor(np.asarray(t) * NUM_BINS).astype(np.int64), 0, NUM_BINS - 1)
    hist += np.bincount(bins.ravel(), minlength=NUM_BINS)
  taps = np.exp(-0.5 * (np.arange(-2, 3) / 0.2) ** 2)
  hist = np.convolve(np.pad(hist, 2, mode="reflect"), taps / taps.sum(), mode="valid")
  pdf = hist / hist.mean()
  if pdf.min() <= 1e-3:
    raise ValueError(
      f"mean_beta density has empty bins (min {pdf.min():.2e}); "
      f"increase num_images (got {num_images})"
    )
  return pdf.astype(np.float32)


def density_weights(t, pdf):
  """w(t) = (1 + 1e-6) / (pdf(bin(t)) + 1e-6), bin = clamp(floor(1000 t), 0, 999)."""
  chex.assert_shape(pdf, (NUM_BINS,))
  bins = jnp.clip(jnp.floor(t * NUM_BINS).astype(jnp.int32), 0, NUM_BINS - 1)
  return (1.0 + 1e-6) / (pdf[bins] + 1e-6)


def _add_zeros(key, t, w, power: float = 1.0):
  k_r, k_perm = jax.random.split(key)
  b, r = t.shape
  cut = jax.random.uniform(k_r, (b, 1)) ** (1.0 / power)
  zero = (jnp.arange(1, r + 1) / r)[None, :] < cut
  t, w = jnp.where(zero, 0.0, t), jnp.where(zero, 0.0, w)
  order = jnp.argsort(jax.random.uniform(k_perm, t.shape), axis=-1)
  return jnp.take_along_axis(t, order, -1), jnp.take_along_axis(w, order, -1)


def sample_times(key, batch: int, num_regions: int, config: TimeSamplerConfig, pdf=None):
  """Draw (t, w), each f32[batch, num_regions]; `pdf` (f32[1000]) weights mean_beta draws.

  Without `pdf`, mean_beta weights are 1. jit with `batch`, `num_regions`, `config` static.
  """
  k_t, k_z = jax.random.split(key)
  if config.kind == "shared":
    t = jnp.broadcast_to(jax.random.uniform(k_t, (batch, 1)), (batch, num_regions))
    w = jnp.ones_like(t)
  elif config.kind == "independent":
    t = jax.random.uniform(k_t, (batch, num_regions))
    w = jnp.ones_like(t)
  elif config.kind == "board_beta":
    t = board_beta_raw(k_t, batch, num_regions, config.concentration)
    w = jnp.ones_like(t)
  else:
    t, _ = mean_beta_raw(k_t, batch, num_regions, config.sharpness)
    w = jnp.ones_like(t) if pdf is None else density_weights(t, pdf)
  if config.add_zeros:
    t, w = _add_zeros(k_z, t, w, config.zeros_power)
  chex.assert_shape([t, w], (batch, num_regions))
  chex.assert_type([t, w], float)
  return t, w
