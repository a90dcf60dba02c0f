"""Even Pixels (method 5.2): 32 x 32 RGB, exactly half the pixels of one hue and half of the
opposite hue (offset 0.5), saturation 1 and value 0.7; item i from default_rng([seed, i])."""

from __future__ import annotations

import numpy as np
from PIL import Image

from ipr_jax.data.pipeline import to_model  # noqa: F401  (re-exported)

SIZE = 32
TEST_SEED = 5_2000
TRAIN_SEED = 5_2001


def generate(rng: np.random.Generator) -> np.ndarray:
  """One image, uint8[32, 32, 3] RGB, converted from uint8 HSV by PIL as the reference does."""
  offset = rng.uniform(0.0, 0.5)
  mask = np.zeros(SIZE * SIZE, np.float64)
  mask[: SIZE * SIZE // 2] = 1.0
  mask = rng.permutation(mask).reshape(SIZE, SIZE)
  hsv = np.stack([0.5 * mask + offset, np.ones_like(mask), np.full_like(mask, 0.7)], axis=-1)
  hsv8 = (hsv * 255).astype(np.uint8)
  return np.asarray(Image.fromarray(hsv8, mode="HSV").convert("RGB"))


def item(index: int, split: str = "test") -> np.ndarray:
  seed = TEST_SEED if split == "test" else TRAIN_SEED
  return generate(np.random.default_rng([seed, index]))
