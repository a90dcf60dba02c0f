"""Counting Polygons evaluator (method 5.3 metrics with our own classifier).

The reference scores samples with a torchvision ResNet-50 with 4 linear heads; we train a small
Flax CNN with the same four heads and a fifth, a cleanliness check, on generated items and
generated negatives (`experiments/tools/train_polygon_classifier.py`) and ship it as package data:
  num_polygons 9 classes (+1), num_vertices 5 classes (+3), is_uniform 2 classes,
  numbers 35 classes (the unordered pairs of `data.counting_polygons.NUMBER_PAIRS`),
  is_clean 2 classes (a clean item of the benchmark, or not: noise, blank, patch-shuffled or
  heavily noised items, `negatives`).
Metrics over images f32[..., 128, 128, 3] in [-1, 1]:
  is_clean              = the cleanliness head says the image is a clean item;
  are_vertices_uniform  = clean and the is_uniform head says yes;
  numbers_match_objects = clean and the numbers head's pair equals {pred num_polygons, pred
                          num_vertices}.
Without the cleanliness check the four heads read "9 polygons" into noise and agree with
themselves on half of N(0, 1) noise images (the chance floor, `experiments.chance_floor`).
"""

from __future__ import annotations

import dataclasses

import chex
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ipr_jax import weights
from ipr_jax.data import counting_polygons as cp
from ipr_jax.denoisers.common import build_module, compute_dtype

HEADS = {
  "num_polygons": cp.MAX_POLYGONS,
  "num_vertices": len(cp.VERTICES),
  "is_uniform": 2,
  "numbers": len(cp.NUMBER_PAIRS),
  "is_clean": 2,
}
NEGATIVES = ("normal_noise", "uniform_noise", "blank", "shuffled", "noised")


@dataclasses.dataclass(frozen=True)
class PolygonClassifierConfig:
  widths: tuple = (16, 32, 64, 64, 128)  # conv widths; the ones marked in `strides` halve
  strides: tuple = (2, 2, 2, 1, 2)
  hidden: int = 256
  dtype: str = "float32"  # compute dtype (float32 or bfloat16); params, norms, logits float32


class PolygonCNN(nnx.Module):
  """Strided 3x3 convs with GroupNorm and ReLU, then mean- and max-pooled features (counts and
  presence), one hidden layer, and the four heads."""

  def __init__(self, cfg: PolygonClassifierConfig, *, rngs: nnx.Rngs):
    chans, dt = (3,) + tuple(cfg.widths), compute_dtype(cfg.dtype)
    self.dtype = dt
    self.convs = nnx.List(
      [
        nnx.Conv(a, b, (3, 3), strides=s, padding=((1, 1), (1, 1)), dtype=dt, rngs=rngs)
        for a, b, s in zip(chans[:-1], chans[1:], cfg.strides)
      ]
    )
    self.norms = nnx.List(
      [nnx.GroupNorm(b, num_groups=min(8, b), dtype=jnp.float32, rngs=rngs) for b in chans[1:]]
    )
    self.hidden = nnx.Linear(2 * chans[-1], cfg.hidden, dtype=dt, rngs=rngs)
    self.heads = nnx.Dict(
      {k: nnx.Linear(cfg.hidden, n, dtype=dt, rngs=rngs) for k, n in HEADS.items()}
    )

  def __call__(self, x, t_region=None, *, key=None):
    """x f32[N, 128, 128, 3] in [-1, 1] -> dict of logits f32[N, classes]."""
    del t_region, key
    h = x
    for conv, norm in zip(self.convs, self.norms):
      h = nnx.relu(norm(conv(h)).astype(self.dtype))
    pooled = jnp.concatenate([h.mean(axis=(1, 2)), h.max(axis=(1, 2))], axis=-1)
    z = nnx.relu(self.hidden(pooled))
    return {k: head(z).astype(jnp.float32) for k, head in self.heads.items()}


def build(cfg: PolygonClassifierConfig, key):
  """(apply, params); with key None the params are shapes only (a template for loading)."""
  return build_module(PolygonCNN, cfg, key)


def _check(x):
  if x.ndim < 4 or x.shape[-3:] != (cp.SIZE, cp.SIZE, 3):
    raise ValueError(
      f"Counting Polygons images must be [..., {cp.SIZE}, {cp.SIZE}, 3], got {x.shape}"
    )


# pair class -> its two numbers, and the pair class of (polygons p, vertices v) as a [9, 5] table
_PAIR_OF_COUNTS = np.array(
  [[cp.pair_label(p, v) for v in cp.VERTICES] for p in range(1, cp.MAX_POLYGONS + 1)], np.int32
)


def predictions(apply, params, x) -> dict:
  """Per-image head predictions, i32[...]: num_polygons (1..9), num_vertices (3..7),
  is_uniform (0/1), numbers (pair class), is_clean (0/1)."""
  _check(x)
  lead = x.shape[:-3]
  logits = apply(params, x.reshape(-1, *x.shape[-3:]), None)
  chex.assert_rank(list(logits.values()), 2)
  out = {k: jnp.argmax(v, axis=-1).astype(jnp.int32).reshape(lead) for k, v in logits.items()}
  out["num_polygons"] = out["num_polygons"] + 1
  out["num_vertices"] = out["num_vertices"] + cp.VERTICES[0]
  return out


def metrics(apply, params, x) -> dict:
  """f32[...] per image: is_clean, are_vertices_uniform, numbers_match_objects (both 0 for an
  image the cleanliness head rejects), and the predicted counts."""
  return metrics_of(predictions(apply, params, x))


def metrics_of(pred: dict) -> dict:
  """The metrics of `predictions(...)` output (no second pass of the classifier)."""
  expected = jnp.asarray(_PAIR_OF_COUNTS)[
    pred["num_polygons"] - 1, pred["num_vertices"] - cp.VERTICES[0]
  ]
  clean = pred["is_clean"] == 1
  return {
    "is_clean": clean.astype(jnp.float32),
    "are_vertices_uniform": (clean & (pred["is_uniform"] == 1)).astype(jnp.float32),
    "numbers_match_objects": (clean & (pred["numbers"] == expected)).astype(jnp.float32),
    "num_polygons": pred["num_polygons"].astype(jnp.float32),
    "num_vertices": pred["num_vertices"].astype(jnp.float32),
  }


def targets(labels: list[dict]) -> dict:
  """Head targets (class indices, i32[N]) from generator labels (all clean items); num_vertices
  -1 (non-uniform) stays -1 and is left out of that head's loss and accuracy."""
  nv = np.array([l["num_vertices"] for l in labels])
  return {
    "num_polygons": np.array([l["num_polygons"] - 1 for l in labels], np.int32),
    "num_vertices": np.where(nv > 0, nv - cp.VERTICES[0], -1).astype(np.int32),
    "is_uniform": np.array([int(l["is_uniform"]) for l in labels], np.int32),
    "numbers": np.array([l["numbers_label"] for l in labels], np.int32),
    "is_clean": np.ones(len(labels), np.int32),
  }


def negatives(rng: np.random.Generator, x: np.ndarray, kinds=NEGATIVES) -> tuple[np.ndarray, list]:
  """Images that are not clean items, built from clean items x f32[N, 128, 128, 3] in [-1, 1]:
  each gets one kind drawn from `kinds`: N(0, s^2) or uniform noise, a blank image of one random
  colour, the item with its 8x8 or 16x16 patches shuffled, or the item plus N(0, s^2) noise with
  s >= 0.35. Returns (f32[N, 128, 128, 3], the kind of each)."""
  n, size = len(x), x.shape[1]
  out, drawn = np.empty_like(x), []
  for i in range(n):
    kind = kinds[rng.integers(len(kinds))]
    if kind == "normal_noise":
      img = rng.normal(0.0, rng.uniform(0.3, 1.5), x[i].shape)
    elif kind == "uniform_noise":
      img = rng.uniform(-1.0, 1.0, x[i].shape)
    elif kind == "blank":
      img = np.broadcast_to(rng.uniform(-1.0, 1.0, 3), x[i].shape)
    elif kind == "shuffled":
      p = int(rng.choice([8, 16]))
      k = size // p
      tiles = x[i].reshape(k, p, k, p, 3).transpose(0, 2, 1, 3, 4).reshape(k * k, p, p, 3)
      tiles = tiles[rng.permutation(k * k)]
      img = tiles.reshape(k, k, p, p, 3).transpose(0, 2, 1, 3, 4).reshape(x[i].shape)
    elif kind == "noised":
      img = x[i] + rng.normal(0.0, rng.uniform(0.35, 1.0), x[i].shape)
    else:
      raise ValueError(f"negative kind must be one of {NEGATIVES}, got {kind!r}")
    out[i] = img
    drawn.append(kind)
  return out.astype(np.float32), drawn


def negative_targets(n: int) -> dict:
  """Targets of n negatives: is_clean 0, every other head left out (-1)."""
  t = {k: np.full(n, -1, np.int32) for k in HEADS}
  t["is_clean"] = np.zeros(n, np.int32)
  return t


def load(name: str = "polygons_blank", dtype: str = "float32"):
  """(apply, params, manifest) of the shipped classifier, computing in `dtype`."""

  man = weights.manifest(name)
  m = man["model"]
  apply, like = build(
    PolygonClassifierConfig(tuple(m["widths"]), tuple(m["strides"]), m["hidden"], dtype), None
  )
  params, man = weights.load_raw(name, like)
  return apply, params, man
