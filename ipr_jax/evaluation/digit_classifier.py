"""Per-cell digit classifier (method 5.1 architecture): conv3x3(1->32) ReLU maxpool2 dropout,
conv3x3(32->64) ReLU maxpool2 dropout, fc -> 128 ReLU, fc -> 10, on tiles in [-1, 1].
For 8x8 digits the fc input is 64 * 2 * 2 instead of 64 * 7 * 7."""

from __future__ import annotations

import dataclasses
import functools

import chex
import jax
import jax.numpy as jnp
from flax import nnx

from ipr_jax import weights
from ipr_jax.denoisers.common import build_module, compute_dtype, dropout


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
  size: int = 28
  dtype: str = "float32"  # compute dtype (float32 or bfloat16); params and logits stay float32


class DigitCNN(nnx.Module):
  def __init__(self, cfg: ClassifierConfig, *, rngs: nnx.Rngs):
    dt = compute_dtype(cfg.dtype)
    self.c1 = nnx.Conv(1, 32, (3, 3), padding=((1, 1), (1, 1)), dtype=dt, rngs=rngs)
    self.c2 = nnx.Conv(32, 64, (3, 3), padding=((1, 1), (1, 1)), dtype=dt, rngs=rngs)
    flat = 64 * (cfg.size // 4) ** 2
    self.f1 = nnx.Linear(flat, 128, dtype=dt, rngs=rngs)
    self.f2 = nnx.Linear(128, 10, dtype=dt, rngs=rngs)

  def __call__(self, x, t_region=None, *, key=None):
    """x f32[N, s, s, 1] in [-1, 1] -> logits f32[N, 10]; dropout only with a key."""
    k = [None] * 2 if key is None else list(jax.random.split(key, 2))
    pool = lambda h: nnx.max_pool(h, (2, 2), strides=(2, 2))
    h = dropout(k[0], pool(nnx.relu(self.c1(x))), 0.25)
    h = dropout(k[1], pool(nnx.relu(self.c2(h))), 0.5)
    return self.f2(nnx.relu(self.f1(h.reshape(h.shape[0], -1)))).astype(jnp.float32)


def build(cfg: ClassifierConfig, key):
  """(apply, params); with key None the params are shapes only (a template for loading)."""
  return build_module(DigitCNN, cfg, key)


def predict_digits(logits):
  """argmax, with a predicted 0 replaced by the second best class (digits 1..9), i32[...]."""
  order = jnp.argsort(-logits, axis=-1)
  return jnp.where(order[..., 0] == 0, order[..., 1], order[..., 0]).astype(jnp.int32)


def predict_raw(apply, params, tiles):
  """The classifier's argmax over all 10 classes for tiles f32[N, s, s, 1]: i32[N] (its plain
  accuracy; boards use `predict_digits`)."""
  return jnp.argmax(apply(params, tiles, None), axis=-1).astype(jnp.int32)


def probabilities(apply, params, images, batch: int = 4096):
  """Softmax of the classifier over uint8 digit images [N, s, s], in batches: f32 numpy [N, 10]."""
  import numpy as np
  from ipr_jax.data import digits

  f = jax.jit(lambda p, x: jax.nn.softmax(apply(p, x, None)))
  x = digits.to_model(images)[..., None]
  return np.concatenate(
    [np.asarray(f(params, jnp.asarray(x[i : i + batch]))) for i in range(0, len(x), batch)]
  )


def board_digits(apply, params, images, cell: int):
  """Decode image Sudoku boards f32[..., 9 cell, 9 cell, 1] in [-1, 1] -> i32[..., 9, 9]."""
  if images.shape[-3:] != (9 * cell, 9 * cell, 1):
    raise ValueError(f"board images must be [..., {9 * cell}, {9 * cell}, 1], got {images.shape}")
  lead = images.shape[:-3]
  tiles = images.reshape(-1, 9, cell, 9, cell, 1).transpose(0, 1, 3, 2, 4, 5)
  logits = apply(params, tiles.reshape(-1, cell, cell, 1), None)
  chex.assert_shape(logits, (tiles.shape[0] * 81, 10))
  return predict_digits(logits).reshape(*lead, 9, 9)


@functools.lru_cache(maxsize=4)
def banks(source: str, idx_dir: str | None = None) -> dict:
  """The digit banks of image Sudoku for a digit source: {'train': uint8[10, N_train, h, w],
  'test': uint8[10, N_test, h, w]}, the instances of each digit that the shipped classifier
  reads correctly and most confidently (`digits.top_confident`), per split."""
  from ipr_jax.data import digits

  apply, params, man = load("sklearn" if source == "sklearn" else "idx_dir")
  data = digits.load(source, idx_dir)
  out = {}
  for split in ("train", "test"):
    images, labels = data[split]
    probs = probabilities(apply, params, images)
    out[split] = digits.top_confident(images, labels, probs, man["bank_per_digit"][split])
  return out


def load(source: str, dtype: str = "float32"):
  """(apply, params, manifest) of the shipped classifier for a digit source, computing in
  `dtype` (float32 or bfloat16)."""

  man = weights.manifest(f"digits_{source}")
  apply, like = build(ClassifierConfig(man["model"]["size"], dtype), None)
  params, man = weights.load_raw(f"digits_{source}", like)
  return apply, params, man
