"""Train the per-cell digit classifier used by the image-Sudoku evaluator and ship it.

    python -m experiments.tools.train_digit_classifier --source sklearn
    python -m experiments.tools.train_digit_classifier --source idx_dir --idx_dir DIR_WITH_MNIST_IDX_FILES

Prints the test accuracy, then writes ipr_jax/assets/digits_<source>/ (params.npz + manifest
with source, command, test accuracy, bank sizes, sha256). Same seed, same weights.
"""

from __future__ import annotations

import sys
import time

import jax
from absl import flags
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from experiments import common
from ipr_jax import pretrained
from ipr_jax.data import digits
from ipr_jax.evaluation import digit_classifier as dc

DEFAULTS = {
  "sklearn": dict(epochs=40, bank_train=100, bank_test=25),
  "idx_dir": dict(epochs=4, bank_train=1000, bank_test=500),
  "tfds": dict(epochs=4, bank_train=1000, bank_test=500),
}


def train(source, images, labels, epochs: int, seed: int, batch: int = 128):
  size = images.shape[-1]
  init_key, dropout_key = jax.random.split(jax.random.key(seed))
  apply, params = dc.build(dc.ClassifierConfig(size), init_key)
  steps_per_epoch = len(images) // batch
  opt = optax.adam(optax.cosine_decay_schedule(1e-3, epochs * steps_per_epoch))
  opt_state = opt.init(params)

  @jax.jit
  def step(params, opt_state, x, y, key):
    def loss_fn(p):
      logits = apply(p, x, None, key=key)
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = opt.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, loss

  x_all = digits.to_model(images)[..., None]
  rng = np.random.default_rng(seed)
  n_steps = epochs * (len(x_all) // batch)
  for i in tqdm(range(n_steps), desc=f"classifier[{source}]", mininterval=5):
    if i % (len(x_all) // batch) == 0:
      order = rng.permutation(len(x_all))
    j = order[(i % (len(x_all) // batch)) * batch :][:batch]
    params, opt_state, _ = step(
      params,
      opt_state,
      jnp.asarray(x_all[j]),
      jnp.asarray(labels[j]),
      jax.random.fold_in(dropout_key, i),
    )
  return apply, params


def define_flags(f):
  flags.DEFINE_enum("source", "sklearn", digits.SOURCES, "digit source", flag_values=f)
  flags.DEFINE_string("idx_dir", None, "the four MNIST IDX files (source idx_dir)", flag_values=f)
  flags.DEFINE_integer("seed", 0, "init and batch order", flag_values=f)
  flags.DEFINE_integer("epochs", None, "default: the source's", flag_values=f)
  flags.DEFINE_string(
    "out_root", pretrained.ASSETS, "where digits_<source>/ is written", flag_values=f
  )


def main(argv=None):
  argv = sys.argv[1:] if argv is None else list(argv)
  args = common.parse_flags(define_flags, argv, "experiments.tools.train_digit_classifier", __doc__)
  t0 = time.time()
  d = DEFAULTS[args.source]
  data = digits.load(args.source, args.idx_dir)
  epochs = args.epochs or d["epochs"]
  apply, params = train(args.source, *data["train"], epochs, args.seed)
  probs = dc.probabilities(apply, params, data["test"][0])
  acc = float((probs.argmax(1) == data["test"][1]).mean())
  print(f"test accuracy ({args.source}, {len(probs)} held-out digits): {acc:.4f}")
  size = data["train"][0].shape[-1]
  manifest = {
    "source": args.source,
    "test_accuracy": acc,
    "num_test": len(probs),
    "epochs": epochs,
    "seed": args.seed,
    "cell": size,
    "bank_per_digit": {"train": d["bank_train"], "test": d["bank_test"]},
    "command": "python -m experiments.tools.train_digit_classifier " + " ".join(argv),
    "commit": common.git_commit(),
    "seconds": time.time() - t0,
  }
  folder = pretrained.save(
    f"digits_{args.source}", params, {"size": size}, manifest, root=args.out_root
  )
  print(f"wrote {folder}")
  return acc


if __name__ == "__main__":
  main()
