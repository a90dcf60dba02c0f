"""How much of a latent codec's space is the digit and how much the handwriting: the share of
the latent variance that the digit's class explains, over the digit banks image-Sudoku boards
are drawn from (docs/results/mnist_sudoku.md, "The denoiser over real-MNIST latents learns
faster").

    python -m experiments.studies.latent_geometry [--models mnist_sudoku_latent_19k,mnist_sudoku_latent_mnist_15k] \
        [--out docs/results/mnist_sudoku/latent_geometry.json]

For each shipped latent model, its codec encodes every digit of the training bank (the
instances training boards are drawn with) and of the test bank, in the normalised latent units
the denoiser sees. Labels are read here only to measure; they never shape a codec. Printed per
model and bank:

- `class_share`: between-class variance / total variance (R^2 of the class), summed over the d
  channels. A denoiser that knows every cell's digit exactly (a perfect Sudoku reasoner) still
  cannot predict the rest, so at full noise its regression loss can fall only by this share:
  the larger it is, the more of the training signal is about the puzzle and the less about the
  style, which no board constrains.
- `separation`: the smallest distance between two class means, in units of the root mean
  within-class variance per channel (how far apart the digits sit against their spread).
- `nearest_mean_accuracy`: each digit classified by the nearest class mean of the training bank
  (how linearly plain the class structure of the latent space is).

With `--boards N`, also the reading test: the model's round-0 pass (its recommended initial
settings) on N validation hard puzzles, each generated board read two ways, by the evaluator
(decode, then the digit classifier: what every valid rate here reports) and in latent space (each
cell's nearest class mean of the training bank, digits 1..9). `valid_classifier` and
`valid_latent` are the two valid rates, `cell_agreement_generated` and `cell_agreement_given`
the shares of generated and of given cells (real digits) both readers read alike. Generated
cells read alike as often as given ones are as plainly digits as real ones: then the misses
are the denoiser's Sudoku, not digits the evaluator stumbles on.

A model whose data need the MNIST files (`latent_mnist`) is skipped with a message when
IPR_JAX_MNIST_DIR is not set.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from experiments import common, shipped
from experiments.configs import mnist_sudoku
from ipr_jax import pretrained, refine
from ipr_jax.data import digits
from ipr_jax.evaluation import digit_classifier
from ipr_jax.evaluation import sudoku as sudoku_eval

DEFAULT_MODELS = ("mnist_sudoku_latent_19k", "mnist_sudoku_latent_mnist_15k")


def define_flags(f):
  flags.DEFINE_list("models", list(DEFAULT_MODELS), "shipped latent models", flag_values=f)
  flags.DEFINE_string("out", None, "write the figures to this JSON file too", flag_values=f)
  flags.DEFINE_integer(
    "boards", 0, "reading test on this many validation hard puzzles", flag_values=f
  )


def geometry(z, labels, means=None) -> dict:
  """Class structure of latents z f32[N, d] with int labels[N] in 0..9: class_share,
  separation and nearest_mean_accuracy (module docstring), with the class means of `means`
  f32[10, d] for the nearest-mean rule (default: z's own)."""
  z = np.asarray(z, np.float64)
  labels = np.asarray(labels)
  if z.ndim != 2 or labels.shape != (len(z),):
    raise ValueError(f"geometry wants z [N, d] and labels [N], got {z.shape} and {labels.shape}")
  classes = np.unique(labels)
  if len(classes) < 2:
    raise ValueError(f"geometry needs at least two classes, got {classes.tolist()}")
  own = np.stack([z[labels == c].mean(0) for c in classes])
  total = z.var(0).sum()
  within = sum(((z[labels == c] - own[i]) ** 2).sum() for i, c in enumerate(classes)) / len(z)
  gaps = np.linalg.norm(own[:, None] - own[None], axis=-1)[np.triu_indices(len(classes), 1)]
  ref = own if means is None else np.asarray(means, np.float64)[classes]
  nearest = classes[np.argmin(np.linalg.norm(z[:, None] - ref[None], axis=-1), axis=1)]
  return {
    "num": int(len(z)),
    "dim": int(z.shape[1]),
    "total_variance": float(total),
    "class_share": float(1.0 - within / total),
    "separation": float(gaps.min() / np.sqrt(within / z.shape[1])),
    "nearest_mean_accuracy": float(np.mean(nearest == labels)),
  }


def bank_latents(model: str) -> dict:
  """{'train': (z f32[N, d], labels), 'test': ...}: model's digit banks through its codec."""
  manifest = pretrained.manifest(model)
  source = manifest["codec"]["source"]
  idx_dir = os.environ.get(mnist_sudoku.MNIST_ENV) if source == "idx_dir" else None
  encode, _, params = pretrained.load_codec(model)
  enc = jax.jit(encode)
  out = {}
  for split, bank in digit_classifier.banks(source, idx_dir).items():
    tiles = digits.to_model(bank.reshape(-1, *bank.shape[2:]))[..., None]
    z = np.concatenate(
      [
        np.asarray(enc(params, jnp.asarray(tiles[i : i + 2048])))
        for i in range(0, len(tiles), 2048)
      ]
    )
    out[split] = (z.reshape(len(tiles), -1), np.repeat(np.arange(10), bank.shape[1]))
  return out


def class_means(z, labels):
  """f32[10, d]: the mean latent of each digit 0..9 in z f32[N, d] with labels[N]."""
  return np.stack([z[labels == c].mean(0) for c in range(10)])


def measure(lat: dict, means) -> dict:
  """The figures of one codec from its bank latents (`bank_latents`) and the training bank's
  class means (`class_means`): {'train': geometry, 'test': geometry (nearest those means)}."""
  return {"train": geometry(*lat["train"]), "test": geometry(*lat["test"], means=means)}


def nearest_digits(z, means):
  """i32[..., 9, 9]: each cell's latent z f32[..., 9, 9, d] read as the nearest of the class means
  f32[10, d] of digits 1..9 (a Sudoku has no 0)."""
  z = np.asarray(z, np.float64)
  gaps = np.linalg.norm(z[..., None, :] - np.asarray(means, np.float64)[1:], axis=-1)
  return np.argmin(gaps, axis=-1).astype(np.int32) + 1


def readings(model: str, boards: int, means, seed: int = 0) -> dict:
  """The reading test (module docstring) of shipped image-Sudoku model `model` on `boards`
  validation hard puzzles, round 0 under key `seed`; `means` f32[10, d] the class means of its
  training bank's latents (`class_means`)."""
  apply, params, manifest, run = shipped.open_model("mnist_sudoku", model, seed)
  task = run.task
  items = task.test_items("hard", boards, validation=True)
  cfg = dataclasses.replace(pretrained.recommended(manifest, "hard"), rounds=0)
  res = refine.refine(
    apply,
    params,
    jax.random.key(seed),
    jnp.asarray(items.x),
    jnp.asarray(items.eligible),
    cfg,
    task.metric_fn,
    metric_params=task.metric_params,
    item_ids=np.arange(boards),
  )
  source = manifest["codec"]["source"]
  _, decode, codec_params = pretrained.load_codec(model)
  cls_apply, cls_params, cls_manifest = digit_classifier.load(source)
  images = jax.jit(decode)(codec_params, res.x)
  by_classifier = np.asarray(
    digit_classifier.board_digits(cls_apply, cls_params, images, cell=cls_manifest["cell"])
  )
  by_latent = nearest_digits(res.x, means)
  generated = np.asarray(items.eligible).reshape(boards, 9, 9)
  same = by_classifier == by_latent
  valid_metric = np.asarray(res.metrics["valid"])[0] > 0.5
  valid_classifier = np.asarray(sudoku_eval.is_valid(jnp.asarray(by_classifier)))
  if not np.array_equal(valid_metric, valid_classifier):  # the evaluator read here as in refine
    raise AssertionError("the classifier's reading here differs from refine's valid metric")
  return {
    "boards": int(boards),
    "valid_classifier": float(valid_classifier.mean()),
    "valid_latent": float(np.asarray(sudoku_eval.is_valid(jnp.asarray(by_latent))).mean()),
    "cell_agreement_generated": float(same[generated].mean()),
    "cell_agreement_given": float(same[~generated].mean()),
  }


def main(argv=None):
  argv = sys.argv[1:] if argv is None else list(argv)
  prog = "experiments.studies.latent_geometry"
  args = common.parse_flags(define_flags, argv, prog, __doc__)
  results = {}
  for model in args.models:
    if model not in pretrained.available():
      raise SystemExit(f"{prog}: no shipped model {model!r}")
    source = pretrained.manifest(model).get("codec", {}).get("source")
    if source is None:
      raise SystemExit(f"{prog}: {model!r} is not a latent model (its manifest has no codec)")
    if source == "idx_dir" and not os.environ.get(mnist_sudoku.MNIST_ENV):
      print(f"{model}: skipped, its digits need the MNIST files ({mnist_sudoku.MNIST_ENV})")
      continue
    lat = bank_latents(model)  # encoded once, for both measurements
    means = class_means(*lat["train"])
    results[model] = measure(lat, means)
    for split, g in results[model].items():
      print(
        f"{model} {split} bank ({g['num']} digits, d = {g['dim']}): class share "
        f"{g['class_share']:.3f}, separation {g['separation']:.2f}, nearest-mean accuracy "
        f"{g['nearest_mean_accuracy']:.4f}"
      )
    if args.boards:
      results[model]["readings"] = r = readings(model, args.boards, means)
      print(
        f"{model} round 0 on {r['boards']} validation hard puzzles: valid as the classifier reads "
        f"{r['valid_classifier']:.1%}, as the latents' nearest class means read "
        f"{r['valid_latent']:.1%}; generated cells read alike {r['cell_agreement_generated']:.1%}"
        f" (given cells {r['cell_agreement_given']:.1%})"
      )
  if args.out:
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
      json.dump(results, f, indent=1)
    print(f"wrote {args.out}")
  return results


if __name__ == "__main__":
  main()
