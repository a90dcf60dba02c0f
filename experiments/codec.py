"""The codec stage of a latent config (`config.model.codec.latent_dim > 0`): train the per-region
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

from experiments import common
from ipr_jax import checkpoints, latents, pretrained
from ipr_jax.data import digits
from ipr_jax.evaluation import digit_classifier

FOLDER = "codec"
STREAM = 0xC0DEC  # the codec stage's key and batch stream, apart from the denoiser's


def config_of(config, cell: int) -> latents.CodecConfig | None:
  """The CodecConfig of `config.model.codec` for `cell`-pixel digit cells; None in pixel space."""
  c = config.model.codec
  if not c.latent_dim:
    return None
  return latents.CodecConfig(patch=cell, channels=1, latent_dim=c.latent_dim, width=c.width,
                             latent_noise=c.latent_noise)


def source_images(config, split: str) -> tuple[np.ndarray, np.ndarray]:
  """(f32[N, s, s, 1] digit tiles in [-1, 1], int labels) of the config's digit source."""
  images, labels = digits.load(config.data.source, config.data.idx_dir)[split]
  return digits.to_model(images)[..., None], labels


def classifier_accuracy(config, codec: latents.Codec, params) -> dict:
  """The digit classifier's accuracy on the held-out digits and on their reconstructions."""
  cls_apply, cls_params, _ = digit_classifier.load(
      "sklearn" if config.data.source == "sklearn" else "idx_dir")
  tiles, labels = source_images(config, "test")
  roundtrip = jax.jit(lambda p, x: codec.decode(p, codec.encode(p, x)))
  read = jax.jit(lambda x: digit_classifier.predict_raw(cls_apply, cls_params, x))
  orig, rec, err = [], [], []
  for i in range(0, len(tiles), 2048):
    x = jnp.asarray(tiles[i:i + 2048])
    y = roundtrip(params, x)
    orig.append(np.asarray(read(x)))
    rec.append(np.asarray(read(y)))
    err.append(np.asarray(jnp.mean((y - x) ** 2, axis=(1, 2, 3))))
  orig, rec = np.concatenate(orig), np.concatenate(rec)
  return {"num_test": int(len(labels)), "accuracy_original": float(np.mean(orig == labels)),
          "accuracy_reconstructed": float(np.mean(rec == labels)),
          "mse_reconstructed": float(np.mean(np.concatenate(err)))}


def _optimizer(config) -> optax.GradientTransformation:
  c = config.model.codec
  return optax.adam(optax.cosine_decay_schedule(c.learning_rate, max(c.steps, 1)))


def is_latent(config) -> bool:
  return "codec" in config.model and bool(config.model.codec.latent_dim)


def cell_of(config) -> int:
  """Pixels per digit cell of the config's source (its evaluator classifier's input size)."""
  return int(pretrained.manifest(
      "digits_sklearn" if config.data.source == "sklearn" else "digits_idx_dir")["cell"])


def _load_folder(name: str, root: str):
  cfg = pretrained.codec_config(name, root)
  codec, _ = latents.build(cfg, None)
  _, _, params = pretrained.load_codec(name, root)
  return codec, params


def load(config, workdir: str):
  """(Codec, params) to evaluate a latent config with: shipped model eval.pretrained's codec
  where that is set, else DIR/codec's; None in pixel space. CheckpointError when DIR has none."""
  if not is_latent(config):
    return None
  if config.eval.pretrained:
    return _load_folder(config.eval.pretrained, pretrained.ASSETS)
  folder = os.path.join(workdir, FOLDER)
  if not os.path.exists(os.path.join(folder, pretrained.CODEC_FILE)):
    raise checkpoints.CheckpointError(f"no trained codec in {folder}: run --mode train (it "
                                      "trains the codec first) or set eval.pretrained")
  return _load_folder(FOLDER, workdir)


def train(config, workdir: str, stop_at_step: int | None = None):
  """(Codec, params): DIR/codec's when it is already trained (same codec config), else trained
  now from step 0 or from its latest checkpoint, normalised and written there. None in pixel
  space. `stop_at_step` ends after the checkpoint at that step (a kill, for tests) with None."""
  if not is_latent(config):
    return None
  cfg, c = config_of(config, cell_of(config)), config.model.codec
  folder = os.path.join(workdir, FOLDER)
  if os.path.exists(os.path.join(folder, pretrained.CODEC_FILE)):
    stored = pretrained.codec_config(FOLDER, workdir)
    if stored != cfg:
      raise ValueError(f"{folder} holds a codec of {stored}, the config asks for {cfg}: use "
                       "another workdir or delete that folder")
    print(f"reusing the trained codec in {folder}")
    return _load_folder(FOLDER, workdir)
  t0 = time.time()
  tiles, _ = source_images(config, "train")  # images only: the codec never sees labels
  key = jax.random.fold_in(jax.random.key(config.seed), STREAM)
  codec, params = latents.build(cfg, jax.random.fold_in(key, 0))
  optimizer = _optimizer(config)
  state = latents.init_state(params, optimizer)
  mgr = checkpoints.manager(os.path.join(folder, "checkpoints"), 1)
  if mgr.latest_step() is not None:
    state, _ = checkpoints.restore(mgr, state)
    print(f"codec: resumed from step {int(state.step)}")
  step_fn = latents.make_train_step(codec, optimizer)
  train_key = jax.random.fold_in(key, 1)
  bar = tqdm(range(int(state.step), c.steps), initial=int(state.step), total=c.steps,
             desc="codec", mininterval=5)
  for i in bar:
    rows = np.random.default_rng([STREAM, config.seed, i]).integers(0, len(tiles), c.batch_size)
    state, metrics = step_fn(state, jnp.asarray(tiles[rows]), jax.random.fold_in(train_key, i))
    if (i + 1) % 500 == 0 or i + 1 in (c.steps, stop_at_step):
      bar.set_postfix(loss=f"{float(metrics['loss']):.4f}")
      checkpoints.save(mgr, i + 1, state, {"stage": "codec"})
    if i + 1 == stop_at_step:
      return None
  params = (latents.normalise(codec, state.net, tiles) if c.normalise
            else latents.identity_normalisation(state.net, cfg.latent_dim))
  quality = classifier_accuracy(config, codec, params)
  info = {"steps": int(c.steps), "batch_size": int(c.batch_size),
          "learning_rate": float(c.learning_rate), "normalise": bool(c.normalise),
          "source": config.data.source, "num_train_images": int(len(tiles)), "seed": config.seed,
          "train_wall_s": round(time.time() - t0, 1), "commit": common.git_commit(), **quality}
  pretrained.save_codec(folder, params, cfg, info)
  print(f"codec: {c.steps} steps in {info['train_wall_s'] / 60:.1f} min; classifier accuracy on "
        f"{quality['num_test']} held-out digits {quality['accuracy_original']:.4f}, on their "
        f"reconstructions {quality['accuracy_reconstructed']:.4f}")
  return codec, params
