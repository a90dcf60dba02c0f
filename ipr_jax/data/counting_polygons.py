"""Counting Polygons (method 5.3): 128 x 128 RGB, 1-9 regular polygons sharing one vertex count
(3-7), plus two numbers written in two more circles: the polygon count and the vertex count.

Generated per index, deterministically, on a blank (white) background by default, or over images
from a local folder (FFHQ-style runs). Differences from the reference, on purpose:
- circle layouts are drawn per item by rejection sampling (radii U(0.07, 0.155), no overlap,
  inside the image) instead of read from a pre-optimised `.npy` file we cannot ship;
- the numbers are centred in their circles (the reference anchors the text's top-left corner at
  the centre, method 7.5) at font size 1.5 r (the reference: r) so that they stay legible at
  128 px, and the font is DejaVu Sans, which ships with matplotlib (the reference
  uses Roboto; pass `font_path=` to use it).
Everything else follows the spec: 512 x 512 drawing on a transparent layer, bicubic resize to 128,
alpha composite over the background; blank colour hsl(U(0, 360), S = 1, L = 0.25); background
colour rule for folders (blurred hue histogram argmin, S = 1, V = 0.9).

The evaluator's classifier is trained on `generate(..., corrupt=True)` items, where with some
probability the polygons get different vertex counts and the numbers a random pair, so that its
`is_uniform` and `numbers` heads see negatives.
"""

from __future__ import annotations

import colorsys
import functools
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ipr_jax.data.pipeline import to_model  # noqa: F401  (re-exported)

SIZE = 128
RENDER = 512
MAX_POLYGONS = 9
VERTICES = (3, 4, 5, 6, 7)
RADIUS_RANGE = (0.07, 0.155)
GAP = 0.01  # unit-coordinate margin between circles
TEST_SEED = 5_3000
TRAIN_SEED = 5_3001
VALIDATION_OFFSET = 1_000_000  # validation items: test generator at index offset + i

# unordered {min, max} pairs of (vertex count 3..7, polygon count 1..9): the numbers head's classes
NUMBER_PAIRS = tuple(
  sorted({(min(v, p), max(v, p)) for v in VERTICES for p in range(1, MAX_POLYGONS + 1)})
)
PAIR_INDEX = {pair: i for i, pair in enumerate(NUMBER_PAIRS)}


def pair_label(a: int, b: int) -> int:
  """Class index of the unordered number pair {a, b}."""
  key = (min(a, b), max(a, b))
  if key not in PAIR_INDEX:
    raise ValueError(f"numbers {a}, {b} are not a (vertex 3..7, polygon 1..9) pair")
  return PAIR_INDEX[key]


def circle_layout(rng: np.random.Generator, num_circles: int, max_tries: int = 200) -> np.ndarray:
  """f64[num_circles, 3] of (x, y, r) in unit coordinates: disjoint circles inside the image.

  Circles are placed one by one (largest first) at uniform positions, rejecting overlaps; when a
  circle finds no place in `max_tries`, the whole layout is redrawn with radii shrunk by 3%.
  """
  if not 1 <= num_circles <= MAX_POLYGONS + 2:
    raise ValueError(f"num_circles must be in 1..{MAX_POLYGONS + 2}, got {num_circles}")
  scale = 1.0
  while True:
    radii = np.sort(rng.uniform(*RADIUS_RANGE, size=num_circles))[::-1] * scale
    placed = []
    for r in radii:
      xy = rng.uniform(r, 1.0 - r, size=(max_tries, 2))
      ok = np.ones(max_tries, bool)
      for px, py, pr in placed:
        ok &= np.hypot(xy[:, 0] - px, xy[:, 1] - py) >= pr + r + GAP
      if not ok.any():
        break
      x, y = xy[np.argmax(ok)]
      placed.append((x, y, r))
    if len(placed) == num_circles:
      return np.asarray(placed)
    scale *= 0.97


def regular_polygon(x: float, y: float, r: float, n: int, rotation: float) -> list:
  """Vertices (pixel coordinates) of a regular n-gon inscribed in the circle (x, y, r)."""
  a = rotation + 2.0 * np.pi * np.arange(n) / n
  return list(zip(x + r * np.cos(a), y + r * np.sin(a)))


@functools.lru_cache(maxsize=None)
def default_font_path() -> str:
  import matplotlib

  path = os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSans.ttf")
  if not os.path.exists(path):
    raise FileNotFoundError(f"matplotlib's DejaVuSans.ttf not found at {path}; pass font_path=")
  return path


@functools.lru_cache(maxsize=256)
def _font(path: str, size: int):
  return ImageFont.truetype(path, size)


def blank_colour(rng: np.random.Generator) -> tuple:
  """hsl(U(0, 360), S = 1, L = 0.25) as uint8 RGB (the blank variant of method 5.3)."""
  r, g, b = colorsys.hls_to_rgb(rng.uniform(0.0, 1.0), 0.25, 1.0)
  return tuple(int(round(255 * c)) for c in (r, g, b))


def background_colour(background: np.ndarray) -> tuple:
  """The hue least present in the background (256-bin PIL hue histogram, circular Gaussian blur
  sigma 26 over 255 taps), at S = 1, V = 0.9 (method 5.3, FFHQ variant)."""
  hue = np.asarray(Image.fromarray(background).convert("HSV"))[..., 0]
  hist = np.bincount(hue.ravel(), minlength=256).astype(np.float64)
  taps = np.arange(255) - 127
  kernel = np.exp(-0.5 * (taps / 26.0) ** 2)
  blurred = sum(w * np.roll(hist, int(s)) for w, s in zip(kernel, taps))
  h = float(np.argmin(blurred)) / 255.0
  return tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(h, 1.0, 0.9))


def render(
  layout: np.ndarray,
  vertices,
  numbers,
  rotations,
  colour,
  background=None,
  font_path: str | None = None,
) -> np.ndarray:
  """uint8[128, 128, 3]: polygons in all but the last two circles, the two numbers in those.

  layout f64[P + 2, 3]; vertices int[P]; numbers (a, b) written in circles P and P + 1;
  rotations f64[P]; colour uint8 RGB; background uint8[128, 128, 3] or None (white).
  """
  layout = np.asarray(layout, np.float64)
  p = len(layout) - 2
  if len(vertices) != p or len(rotations) != p or p < 1:
    raise ValueError(
      f"{len(layout)} circles need {len(layout) - 2} >= 1 vertex counts and "
      f"rotations, got {len(vertices)} and {len(rotations)}"
    )
  layer = Image.new("RGBA", (RENDER, RENDER), (0, 0, 0, 0))
  draw = ImageDraw.Draw(layer)
  fill = tuple(colour) + (255,)
  px = layout * RENDER
  for (x, y, r), n, rot in zip(px[:p], vertices, rotations):
    draw.polygon(regular_polygon(x, y, r, int(n), float(rot)), fill=fill)
  font_path = font_path or default_font_path()
  for (x, y, r), number in zip(px[p:], numbers):
    draw.text((x, y), str(int(number)), fill=fill, font=_font(font_path, int(1.5 * r)), anchor="mm")
  layer = layer.resize((SIZE, SIZE), Image.BICUBIC)
  if background is None:
    base = Image.new("RGBA", (SIZE, SIZE), (255, 255, 255, 255))
  else:
    background = np.asarray(background, np.uint8)
    if background.shape != (SIZE, SIZE, 3):
      raise ValueError(f"background must be uint8[{SIZE}, {SIZE}, 3], got {background.shape}")
    base = Image.fromarray(background).convert("RGBA")
  return np.asarray(Image.alpha_composite(base, layer).convert("RGB"))


def generate(
  rng: np.random.Generator,
  num_polygons: int | None = None,
  *,
  background=None,
  corrupt: bool = False,
  font_path: str | None = None,
) -> tuple[np.ndarray, dict]:
  """One item: (uint8[128, 128, 3], labels).

  labels: num_polygons (1..9), num_vertices (3..7 shared by all polygons, or -1 when they differ),
  numbers (the pair written), numbers_label (its class), is_uniform, numbers_match (the written
  numbers equal {num_polygons, num_vertices}). With `corrupt`, half the items with >= 2 polygons
  get differing vertex counts and, independently, 3 in 4 get a random number pair (a classifier
  trained with fewer learnt to infer the pair from the counts instead of reading the digits).
  """
  p = int(rng.integers(1, MAX_POLYGONS + 1)) if num_polygons is None else int(num_polygons)
  if not 1 <= p <= MAX_POLYGONS:
    raise ValueError(f"num_polygons must be in 1..{MAX_POLYGONS}, got {p}")
  layout = circle_layout(rng, p + 2)
  layout = layout[rng.permutation(p + 2)]
  v = int(rng.choice(VERTICES))
  vertices = np.full(p, v)
  if corrupt and p >= 2 and rng.uniform() < 0.5:
    while len(set(vertices.tolist())) < 2:
      vertices = rng.choice(VERTICES, size=p)
  numbers = (p, v)
  if corrupt and rng.uniform() < 0.75:
    numbers = NUMBER_PAIRS[int(rng.integers(len(NUMBER_PAIRS)))]
    if rng.uniform() < 0.5:
      numbers = numbers[::-1]
  rotations = rng.uniform(0.0, 2.0 * np.pi, size=p)
  colour = blank_colour(rng) if background is None else background_colour(background)
  image = render(layout, vertices, numbers, rotations, colour, background, font_path)
  uniform = len(set(vertices.tolist())) == 1
  labels = {
    "num_polygons": p,
    "num_vertices": v if uniform else -1,
    "numbers": tuple(int(n) for n in numbers),
    "numbers_label": pair_label(*numbers),
    "is_uniform": uniform,
    "numbers_match": uniform and pair_label(*numbers) == pair_label(p, v),
  }
  return image, labels


class Backgrounds:
  """Images of a local folder (e.g. FFHQ), sorted by name, resized shortest side to 128 and
  centre-cropped; item i uses image i mod count (method 5.3)."""

  EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")

  def __init__(self, folder: str):
    if not os.path.isdir(folder):
      raise ValueError(f"background folder {folder!r} does not exist")
    self.files = sorted(f for f in os.listdir(folder) if f.lower().endswith(self.EXTENSIONS))
    if not self.files:
      raise ValueError(f"background folder {folder!r} holds no {'/'.join(self.EXTENSIONS)} images")
    self.folder = folder

  def __len__(self):
    return len(self.files)

  def __getitem__(self, index: int) -> np.ndarray:
    img = Image.open(os.path.join(self.folder, self.files[index % len(self.files)])).convert("RGB")
    w, h = img.size
    s = SIZE / min(w, h)
    img = img.resize(
      (max(SIZE, round(w * s)), max(SIZE, round(h * s))), Image.BICUBIC, reducing_gap=2.0
    )
    w, h = img.size
    left, top = (w - SIZE) // 2, (h - SIZE) // 2
    return np.asarray(img.crop((left, top, left + SIZE, top + SIZE)))


def item(
  index: int,
  split: str = "test",
  *,
  backgrounds: Backgrounds | None = None,
  corrupt: bool = False,
  seed: int = 0,
) -> tuple[np.ndarray, dict]:
  """Item `index` of a split. Test items cycle through 1..9 polygons (index mod 9 + 1) from
  default_rng([TEST_SEED, index]); train items draw the count, from default_rng([TRAIN_SEED, seed,
  index])."""
  if split not in ("train", "test", "validation"):
    raise ValueError(f"split must be train, test or validation, got {split!r}")
  background = None if backgrounds is None else backgrounds[index]
  if split == "train":
    rng = np.random.default_rng([TRAIN_SEED, seed, index])
    return generate(rng, background=background, corrupt=corrupt)
  if split == "validation":
    index += VALIDATION_OFFSET
  rng = np.random.default_rng([TEST_SEED, seed, index])
  return generate(rng, index % MAX_POLYGONS + 1, background=background, corrupt=corrupt)
