"""The codec stage of a latent config (`config.model.codec.latent_dim > 0`; what it reads is
`translate.codec_stage(config)`, a `plan.CodecStage`): train the per-region
autoencoder (`ipr_jax.latents`) on the digit source's training images, labels unused, into
DIR/codec (Orbax checkpoints with exact resume: step i's batch and key depend on (seed, i) only),
then fit the latent normalisation and write DIR/codec/codec.npz + manifest.json, which a later
`--mode train` reuses. Its quality is the evaluator classifier's accuracy on reconstructed
held-out digits against the originals (the classifier only reads; it never trains the codec).
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from experiments import common, plan, translate
from ipr_jax import checkpoints, latents, pretrained, typicality
from ipr_jax.data import digits, image_sudoku
from ipr_jax.evaluation import digit_classifier
from ipr_jax.evaluation import sudoku as sudoku_eval

FOLDER = "codec"
STREAM = 0xC0DEC  # the codec stage's batch stream (numpy), apart from the denoiser's
# CodecRecipe fields that shape the trained weights besides the architecture
RECIPE = (
  "steps",
  "decoder_steps",
  "batch_size",
  "learning_rate",
  "latent_noise",
  "decoder_noise",
  "normalise",
)


def config_of(stage: plan.CodecStage, cell: int) -> latents.CodecConfig:
  """The CodecConfig of the stage's recipe for `cell`-pixel digit cells."""
  c = stage.recipe
  return latents.CodecConfig(patch=cell, channels=1, latent_dim=c.latent_dim, width=c.width)


def _recipe(stage: plan.CodecStage) -> dict:
  return {k: getattr(stage.recipe, k) for k in RECIPE}


def source_images(stage: plan.CodecStage, split: str) -> tuple[np.ndarray, np.ndarray]:
  """(f32[N, s, s, 1] digit tiles in [-1, 1], int labels) of the stage's digit source."""
  images, labels = digits.load(stage.source, stage.idx_dir)[split]
  return digits.to_model(images)[..., None], labels


def quality(stage: plan.CodecStage, codec: latents.Codec, params, boards: int = 300) -> dict:
  """What the codec loses, read by the evaluator's digit classifier (which never trains it):
  accuracy on every held-out digit and on the test bank's digits (the ones test boards are
  drawn with), original vs reconstructed, and the Sudoku ceiling: the valid rate of the first
  `boards` held-out solved boards after a round trip through the codec (1.0 = nothing lost)."""
  cls_apply, cls_params, man = digit_classifier.load(_classifier(stage))
  roundtrip = jax.jit(lambda p, x: codec.decode(p, codec.encode(p, x)))
  read = jax.jit(lambda x: digit_classifier.predict_raw(cls_apply, cls_params, x))

  def accuracy(tiles, labels):
    orig = np.concatenate(
      [np.asarray(read(jnp.asarray(tiles[i : i + 2048]))) for i in range(0, len(tiles), 2048)]
    )
    rec = np.concatenate(
      [
        np.asarray(read(roundtrip(params, jnp.asarray(tiles[i : i + 2048]))))
        for i in range(0, len(tiles), 2048)
      ]
    )
    return float(np.mean(orig == labels)), float(np.mean(rec == labels))

  out = {}
  tiles, labels = source_images(stage, "test")
  out["num_test"] = int(len(labels))
  out["accuracy_original"], out["accuracy_reconstructed"] = accuracy(tiles, labels)
  bank = digit_classifier.banks(stage.source, stage.idx_dir)["test"]
  out["bank_accuracy_original"], out["bank_accuracy_reconstructed"] = accuracy(
    digits.to_model(bank.reshape(-1, *bank.shape[2:]))[..., None],
    np.repeat(np.arange(10), bank.shape[1]),
  )
  imgs = digits.to_model(image_sudoku.test_images(bank, boards))[..., None]
  valid = jax.jit(
    lambda x: sudoku_eval.is_valid(
      digit_classifier.board_digits(cls_apply, cls_params, x, cell=man["cell"])
    )
  )
  out["board_ceiling"] = float(
    np.mean(
      np.concatenate(
        [
          np.asarray(valid(roundtrip(params, jnp.asarray(imgs[i : i + 50]))))
          for i in range(0, boards, 50)
        ]
      )
    )
  )
  out["boards"] = int(boards)
  return out


def _phase(recipe: plan.CodecRecipe, step: int):
  """(optimizer, train_encoder, latent_noise) of codec step `step`: steps [0, steps) train the
  whole autoencoder; then `decoder_steps` steps train the decoder alone (encoder frozen, so the
  latent space does not move) with `decoder_noise`, each phase with its own cosine lr."""
  c = recipe
  if step < c.steps:
    return (
      optax.adam(optax.cosine_decay_schedule(c.learning_rate, max(c.steps, 1))),
      True,
      c.latent_noise,
    )
  decoder = optax.adam(optax.cosine_decay_schedule(c.learning_rate / 2, max(c.decoder_steps, 1)))
  return latents.decoder_only(decoder), False, c.decoder_noise


def _classifier(stage: plan.CodecStage) -> str:
  """The shipped digit classifier (`digits_<name>`) that reads the stage's source."""
  return "sklearn" if stage.source == "sklearn" else "idx_dir"


def cell_of(stage: plan.CodecStage) -> int:
  """Pixels per digit cell of the stage's source (its evaluator classifier's input size)."""
  return int(pretrained.manifest(f"digits_{_classifier(stage)}")["cell"])


def is_trained(workdir: str) -> bool:
  """Whether DIR/codec holds a finished codec (codec.npz with its manifest entry)."""
  return os.path.exists(os.path.join(workdir, FOLDER, pretrained.CODEC_FILE))


MIXTURE_COMPONENTS = 9  # one per digit a board holds; the mixture never sees a label
MIXTURE_SEED = 0


def training_cells(stage: plan.CodecStage) -> np.ndarray:
  """f32[9 N, s, s, 1]: the training bank's digits 1-9, the cells every training board of the
  denoiser is composed of (`experiments.tasks.sudoku`), in [-1, 1]."""
  bank = digit_classifier.banks(stage.source, stage.idx_dir)["train"]
  return digits.to_model(bank[1:].reshape(-1, *bank.shape[2:]))[..., None]


def mixture(stage: plan.CodecStage, codec: latents.Codec, params) -> dict:
  """The typicality mixture of a latent model (`ipr_jax.typicality.fit`): MIXTURE_COMPONENTS
  Gaussians fitted to the codec's latents of the training cells, without their labels."""
  tiles = training_cells(stage)
  encode = jax.jit(codec.encode)
  z = np.concatenate(
    [
      np.asarray(encode(params, jnp.asarray(tiles[i : i + 2048])))
      for i in range(0, len(tiles), 2048)
    ]
  )
  return typicality.fit(z.reshape(len(tiles), -1), MIXTURE_COMPONENTS, seed=MIXTURE_SEED)


def load_folder(name: str, root: str):
  """(Codec, params) of the codec shipped in root/name (`pretrained.load_codec`)."""
  cfg = pretrained.codec_config(name, root)
  codec, _ = latents.build(cfg, None)
  _, _, params = pretrained.load_codec(name, root)
  return codec, params


def load(stage: plan.CodecStage | None, workdir: str):
  """(Codec, params) to evaluate a latent config with: shipped model eval.pretrained's codec
  where that is set, else DIR/codec's; None in pixel space (no stage). CheckpointError when
  DIR has none."""
  if stage is None:
    return None
  if stage.pretrained:
    return load_folder(stage.pretrained, pretrained.ASSETS)
  folder = os.path.join(workdir, FOLDER)
  if not is_trained(workdir):
    raise checkpoints.CheckpointError(
      f"no trained codec in {folder}: run --mode train (it "
      "trains the codec first) or set eval.pretrained"
    )
  return load_folder(FOLDER, workdir)


def _inherit(stage: plan.CodecStage, cfg: latents.CodecConfig, folder: str):
  """(Codec, params) of shipped model `train.init_from`'s codec, copied into `folder`: a denoiser
  warm-started from a latent model only makes sense over the latents it was trained on.
  ValueError when that model is pixel-space or its codec differs from the config's."""
  name = stage.init_from
  try:
    stored = pretrained.codec_config(name)
  except ValueError as e:
    raise ValueError(
      f"train.init_from={name!r} has no codec, but this config is latent "
      f"(model.codec.latent_dim={cfg.latent_dim}): warm-start from a latent model"
    ) from e
  if stored != cfg:
    raise ValueError(
      f"train.init_from={name!r} codes cells with {stored}; the config asks for {cfg}: "
      "set config.model.codec to the shipped codec's architecture"
    )
  codec, params = load_folder(name, pretrained.ASSETS)
  info = dict(pretrained.manifest(name)["codec"], inherited_from=name)
  info.pop("config"), info.pop("sha256")
  pretrained.save_codec(folder, params, cfg, info)
  print(f"codec: taken from the warm-start model {name!r} (not trained)")
  return codec, params


def train(stage: plan.CodecStage | None, workdir: str, stop_at_step: int | None = None):
  """(Codec, params): DIR/codec's when it is already trained (same codec config), else the
  codec of shipped model `train.init_from` where that is set, else trained now from step 0 or
  from its latest checkpoint, normalised and written there. None in pixel space.
  `stop_at_step` ends after the checkpoint at that step (a kill, for tests) with None."""
  if stage is None:
    return None
  cfg, c = config_of(stage, cell_of(stage)), stage.recipe
  folder = os.path.join(workdir, FOLDER)
  if is_trained(workdir):
    stored = pretrained.manifest(FOLDER, workdir)["codec"]
    recipe = {k: stored.get(k) for k in RECIPE}
    origin = stored.get("inherited_from", "")  # "" = trained here
    want = _recipe(stage) if not stage.init_from else recipe
    if pretrained.codec_config(FOLDER, workdir) != cfg or (recipe, origin) != (
      want,
      stage.init_from,
    ):
      raise ValueError(
        f"{folder} holds a codec of {stored['config']} "
        + (f"taken from {origin!r}" if origin else f"trained with {recipe}")
        + f"; the config asks for {cfg} "
        + (f"taken from {stage.init_from!r}" if stage.init_from else f"trained with {want}")
        + ": use another workdir or delete that folder"
      )
    print(f"reusing the trained codec in {folder}")
    return load_folder(FOLDER, workdir)
  if stage.init_from:  # the warm-start denoiser's weights live in its codec's latents
    return _inherit(stage, cfg, folder)
  t0, commit = time.time(), common.git_commit()  # the code this codec is trained with
  tiles, _ = source_images(stage, "train")  # images only: the codec never sees labels
  key = translate.stream_key(stage.seed, "codec")
  init_key, train_key = jax.random.split(key)
  codec, params = latents.build(cfg, init_key)
  total = c.steps + c.decoder_steps
  mgr = checkpoints.manager(os.path.join(folder, "checkpoints"), 1)
  start = mgr.latest_step() or 0
  optimizer, _, _ = _phase(c, max(start - 1, 0))  # the phase its checkpoint was saved in
  state = latents.init_state(params, optimizer)
  if start:
    state, _ = checkpoints.restore(mgr, state)
    print(f"codec: resumed from step {start}")
  bar = tqdm(range(start, total), initial=start, total=total, desc="codec", mininterval=5)
  for i in bar:
    if i in (start, c.steps):  # (re)entering a phase: its optimiser and step function
      optimizer, train_encoder, noise = _phase(c, i)
      if i == c.steps:  # the decoder phase starts with fresh moments for the decoder alone
        state = latents.init_state({"net": state.net}, optimizer, i)
      step_fn = latents.make_train_step(
        codec, optimizer, latent_noise=noise, train_encoder=train_encoder
      )
    rows = np.random.default_rng([STREAM, stage.seed, i]).integers(0, len(tiles), c.batch_size)
    state, metrics = step_fn(state, jnp.asarray(tiles[rows]), jax.random.fold_in(train_key, i))
    if (i + 1) % 500 == 0 or i + 1 in (c.steps, total, stop_at_step):
      bar.set_postfix(loss=f"{float(metrics['loss']):.4f}")
      checkpoints.save(mgr, i + 1, state, {"stage": "codec"})
    if i + 1 == stop_at_step:
      return None
  params = (
    latents.normalise(codec, state.net, tiles)
    if c.normalise
    else latents.identity_normalisation(state.net, cfg.latent_dim)
  )
  report = quality(stage, codec, params)
  info = {
    **_recipe(stage),
    "source": stage.source,
    "num_train_images": int(len(tiles)),
    "seed": stage.seed,
    "train_wall_s": round(time.time() - t0, 1),
    "commit": commit,
    **report,
  }
  pretrained.save_codec(folder, params, cfg, info)
  print(
    f"codec: {total} steps in {info['train_wall_s'] / 60:.1f} min; classifier accuracy on "
    f"{report['num_test']} held-out digits {report['accuracy_original']:.4f} -> "
    f"{report['accuracy_reconstructed']:.4f} reconstructed (test bank "
    f"{report['bank_accuracy_original']:.4f} -> {report['bank_accuracy_reconstructed']:.4f}); "
    f"held-out solved boards still valid after the round trip: {report['board_ceiling']:.3f}"
  )
  return codec, params
