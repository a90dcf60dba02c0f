"""Sudoku benchmarks: symbolic cells, and boards of handwritten digits in pixel or latent space."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from experiments import plots
from experiments.tasks.base import Task, TestItems, register, tfds_test
from ipr_jax import graphs, latents, regions, tfds_builders
from ipr_jax.data import digits, image_sudoku, pipeline, sudoku, unique_sudoku
from ipr_jax.evaluation import digit_classifier
from ipr_jax.evaluation import sudoku as sudoku_eval


def _sudoku_fields(graph: str) -> dict:
  """Row/column/box position ids and the attention graph (`sudoku_peers` or `full`)."""
  graphs_by_name = {"sudoku_peers": graphs.sudoku_peers, "full": lambda: graphs.full(81)}
  if graph not in graphs_by_name:
    raise ValueError(f"model.graph must be one of {tuple(graphs_by_name)}, got {graph!r}")
  row, col, box = graphs.sudoku_position_ids()
  return {
    "position_ids": (tuple(row), tuple(col), tuple(box)),
    "attention_graph": tuple(map(tuple, graphs_by_name[graph]())),
  }


def _unique_items(level: str, num: int, data, to_x, validation: bool) -> TestItems:
  """Puzzles with one solution (`unique_sudoku` level) from the unique_sudoku TFDS builder;
  validation puzzles drawn procedurally. Labels add the puzzles' solver ratings."""
  if validation:
    boards, givens = unique_sudoku.validation_set(level, num)
    return TestItems(to_x(boards), ~givens, {"boards": boards, "givens": givens})
  rows = tfds_test(tfds_builders.UniqueSudoku, level, num, data.tfds_dir)
  boards, givens = _puzzles(rows)
  labels = {"boards": boards, "givens": givens}
  labels.update({k: np.array([r[k] for r in rows]) for k in ("num_givens", "solver_nodes")})
  return TestItems(to_x(boards), ~givens, labels)


def unique_pool(num: int, tfds_dir) -> tuple[np.ndarray, np.ndarray]:
  """(boards int8[num, 9, 9], givens bool[num, 81]): minimal unique puzzles of the first `num`
  training boards, the unique_sudoku builder's train split (prepared once in tfds_dir)."""
  builder = tfds_builders.UniqueSudoku(
    config="minimal", num_train=num, num_test=0, data_dir=tfds_dir
  )
  builder.download_and_prepare()
  source = builder.as_data_source()["train"]
  return _puzzles([source[i] for i in range(num)])


def _puzzles(rows) -> tuple[np.ndarray, np.ndarray]:
  """(boards int8[N, 9, 9], givens bool[N, 81]) of unique_sudoku rows."""
  return (
    np.stack([r["board"] for r in rows]).astype(np.int8),
    np.stack([r["givens"] for r in rows]).astype(bool),
  )


def _sudoku_items(config_name: str, data, to_x):
  """Test items from the mnist_sudoku TFDS builder's `config_name` (board image, givens of the
  split); validation items (training-time model selection) drawn procedurally by `to_x`. The
  unique-solution levels (`unique_sudoku.LEVELS`) come from the unique_sudoku builder."""

  def test_items(split, num, validation=False):
    if isinstance(split, str) and split in unique_sudoku.LEVELS:
      return _unique_items(split, num, data, to_x, validation)
    sudoku.split_range(split)  # ValueError naming the splits
    if validation:
      boards, givens = sudoku.validation_set(split, num)
      return TestItems(to_x(boards), ~givens, {"boards": boards, "givens": givens})
    rows = tfds_test(
      tfds_builders.MnistSudoku,
      config_name,
      num,
      data.tfds_dir,
      **({"idx_dir": data.idx_dir} if config_name == "idx_dir" else {}),
    )
    boards = np.stack([r["board"] for r in rows]).astype(np.int8)
    givens = (
      np.stack([r[f"givens_{split}"] for r in rows]).astype(bool)
      if split in ("hard", "medium", "easy")
      else np.stack([sudoku.test_givens(i, split) for i in range(num)])
    )
    x = pipeline.to_model(np.stack([r["image"] for r in rows]))
    return TestItems(x, ~givens, {"boards": boards, "givens": givens})

  return test_items


@register(
  "sudoku_symbolic",
  data_keys=("pool_size", "tfds_dir", "unique_pool", "unique_fraction"),
  model_keys=("graph",),
  splits=tuple(sudoku.SPLITS) + unique_sudoku.LEVELS,
)
def _sudoku_symbolic(config) -> Task:
  d = config.data

  def stream(seed, batch):
    unique = unique_pool(d.unique_pool, d.tfds_dir) if d.unique_fraction > 0 else None
    return sudoku.TrainStream(seed, batch, d.pool_size, unique, d.unique_fraction)

  def strip(hist, labels, path, shown):
    return plots.sudoku_strip(
      hist, labels["givens"], path, shown, row_labels=labels.get("row_labels")
    )

  return Task(
    "sudoku_symbolic",
    regions.make_grid(9, 9, 1),
    dict(height=9, width=9, channels=9, patch=1, **_sudoku_fields(config.model.graph)),
    stream,
    _sudoku_items("symbolic", config.data, sudoku.to_symbolic),
    sudoku_eval.symbolic_metrics,
    "valid",
    strip=strip,
  )


class _ImageSudokuStream:
  """Image boards composed from the train digit bank, with random givens (per-step seeded)."""

  def __init__(self, seed, batch_size, pool_size, source, idx_dir):
    self.boards = sudoku.TrainStream(seed, batch_size, pool_size)
    self.bank = digit_classifier.banks(source, idx_dir)["train"]
    self.seed = seed

  def batch(self, step):
    b = self.boards.batch(step)
    boards = np.argmax(b["x"], axis=-1) + 1
    rng = np.random.default_rng([image_sudoku.COMPOSE_SEED, self.seed, step])
    return {"x": self.compose(boards, rng), "mask": b["mask"]}

  def compose(self, boards, rng):
    """f32[B, 9h, 9w, 1] board images in [-1, 1], one bank instance per cell."""
    imgs = np.stack([digits.compose_board(bd, self.bank, rng) for bd in boards])
    return digits.to_model(imgs)[..., None]


class _LatentSudokuStream(_ImageSudokuStream):
  """The image stream's boards and digit instances (same rng), as per-cell latents: the train
  bank is encoded once, so each batch is a lookup (encode is per region, so this equals
  encoding the composed board image)."""

  def __init__(self, seed, batch_size, pool_size, source, idx_dir, encode_bank):
    super().__init__(seed, batch_size, pool_size, source, idx_dir)
    self.latent_bank = encode_bank(self.bank)

  def compose(self, boards, rng):
    """f32[B, 9, 9, d]: the latents of the instances the image stream would draw."""
    return np.stack(
      [digits.board_cells(bd, self.latent_bank, rng).reshape(9, 9, -1) for bd in boards]
    )


@register(
  "mnist_sudoku",
  data_keys=("source", "idx_dir", "pool_size", "tfds_dir"),
  model_keys=("graph", "codec"),
  splits=tuple(sudoku.SPLITS),
)
def _mnist_sudoku(config, codec=None) -> Task:
  """Pixel space (model.codec.latent_dim 0), or with `codec` = (Codec, params) the 9x9 grid of
  per-cell latents: the denoiser and IPR run over latents, the metric decodes inside refine."""
  d = config.data
  cls_apply, cls_params, man = digit_classifier.load(
    "sklearn" if d.source == "sklearn" else "idx_dir"
  )
  cell = man["cell"]
  latent = bool(config.model.codec.latent_dim)
  if latent and codec is None:
    raise ValueError(
      "model.codec.latent_dim > 0 makes this a latent config: it needs its "
      "trained codec (--mode train trains it first; eval.pretrained ships one)"
    )
  to_x = lambda imgs: digits.to_model(imgs)[..., None]
  if latent:
    coder, codec_params = codec
    if coder.config.patch != cell or coder.config.latent_dim != config.model.codec.latent_dim:
      raise ValueError(
        f"the codec codes {coder.config.patch}-pixel cells into "
        f"{coder.config.latent_dim} numbers; this config has {cell}-pixel cells "
        f"and model.codec.latent_dim {config.model.codec.latent_dim}"
      )
    encode = jax.jit(coder.encode)

    def encode_x(x):  # f32[N, H, W, 1] in [-1, 1] -> latents f32[N, 9, 9, d], in chunks
      return np.concatenate(
        [
          np.asarray(encode(codec_params, jnp.asarray(x[i : i + 256])))
          for i in range(0, len(x), 256)
        ]
      )

    to_x = lambda imgs: encode_x(digits.to_model(imgs)[..., None])

  def validation_x(boards):
    bank = digit_classifier.banks(d.source, d.idx_dir)["test"]
    return to_x(
      np.stack([image_sudoku.compose_item(b, bank, i, "validation") for i, b in enumerate(boards)])
    )

  read = jax.jit(functools.partial(digit_classifier.board_digits, cls_apply, cell=cell))
  pixel_metric = functools.partial(sudoku_eval.image_metrics, cls_apply, cell=cell)
  items = _sudoku_items(d.source, d, validation_x)

  def board_strip(boards, labels, path, shown):  # boards: the shown rounds' images only
    return plots.sudoku_strip(
      boards,
      labels["givens"],
      path,
      range(len(shown)),
      digits=np.asarray(read(cls_params, boards)),
      row_labels=labels.get("row_labels"),
      round_names=shown,
    )

  def strip(hist, labels, path, shown):  # board images; the classifier's reading marks bad cells
    # only the shown rounds are read: a long history of large boards at once does not fit
    return board_strip(np.asarray(hist)[list(shown)], labels, path, shown)

  if not latent:
    fields = dict(height=9 * cell, width=9 * cell, channels=1, patch=cell)
    if config.model.kind == "transformer":
      fields.update(_sudoku_fields(config.model.graph))
    return Task(
      "mnist_sudoku",
      regions.make_grid(9 * cell, 9 * cell, cell),
      fields,
      lambda seed, batch: _ImageSudokuStream(seed, batch, d.pool_size, d.source, d.idx_dir),
      items,
      pixel_metric,
      "valid",
      metric_params=cls_params,
      strip=strip,
    )

  def encode_bank(bank):  # uint8[10, N, s, s] -> f32[10, N, latent_dim]
    return to_x(bank.reshape(-1, cell, cell)).reshape(*bank.shape[:2], -1)

  def latent_items(split, num, validation=False):  # the image items, encoded
    got = items(split, num, validation)
    if validation:
      return got
    return TestItems(encode_x(got.x), got.eligible, got.labels)

  decode = jax.jit(coder.decode)

  def latent_strip(hist, labels, path, shown):  # the decoded boards' strip
    # only the shown rounds are decoded (288 rounds of 28x28 cells at once need ~28 GB)
    picked = np.asarray(hist)[list(shown)]
    imgs = np.asarray(decode(codec_params, jnp.asarray(picked.reshape(-1, *picked.shape[2:]))))
    return board_strip(imgs.reshape(*picked.shape[:2], *imgs.shape[1:]), labels, path, shown)

  fields = dict(
    height=9,
    width=9,
    channels=coder.config.latent_dim,
    patch=1,
    **_sudoku_fields(config.model.graph),
  )
  return Task(
    "mnist_sudoku",
    regions.make_grid(9, 9, 1),
    fields,
    lambda seed, batch: _LatentSudokuStream(
      seed, batch, d.pool_size, d.source, d.idx_dir, encode_bank
    ),
    latent_items,
    latents.latent_metric(coder.decode, pixel_metric),
    "valid",
    metric_params={"codec": codec_params, "pixels": cls_params},
    strip=latent_strip,
  )
