"""How well a Sudoku model predicts from clean context in one step: accuracy and predicted
log-variance against the number of known cells.

    python -m experiments.studies.sudoku_diagnostics --config experiments/configs/sudoku_symbolic.py:cpu \
        --config.eval.pretrained=sudoku_symbolic_cpu [--num 256]

(or `--workdir DIR` for a training run's checkpoint). For each k in `--known`: `num` validation
boards (their own seed stream, never the test set) with exactly k cells given at t = 0 and the
other 81 - k at t = 1 (pure noise); one forward pass; x_hat = z - t u decoded by argmax. Prints
the fraction of unknown cells decoded right (chance 1/9 with nothing known) and their mean
predicted log-variance. IPR rounds regenerate a quarter of the unknown cells among the rest, so
the rows with 40-60 known cells say how much a round can repair.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from absl import app, flags
from ml_collections import config_flags

from experiments import evaluate, translate
from ipr_jax import flow, regions
from ipr_jax.data import sudoku

FLAGS = {}


def define_flags():
  """The command line's flags, defined when run as a script (not at import, so that tests can
  import this module beside others that define --config)."""
  FLAGS.update(
    config=config_flags.DEFINE_config_file("config", None, "experiment config", lock_config=True),
    workdir=flags.DEFINE_string("workdir", None, "training run directory"),
    num=flags.DEFINE_integer("num", 256, "validation boards per row"),
    known=flags.DEFINE_list("known", ["80", "60", "40", "20", "0"], "known cells of each row"),
  )


def one_step(apply, params, x, known, key, grid):
  """(accuracy, mean log-variance) over the unknown cells of x f32[N, 9, 9, 9] with the cells of
  known bool[N, 81] clean (t = 0) and the rest pure noise (t = 1), from one denoiser call."""
  t_region = jnp.where(known, 0.0, 1.0)
  t_pixel = regions.to_pixels(t_region, grid)
  z = flow.interpolate(x, jax.random.normal(key, x.shape), t_pixel)
  out = apply(params, z, t_region)
  x_hat = flow.x_hat(z, t_pixel, out.velocity)
  right = (jnp.argmax(x_hat, -1) == jnp.argmax(x, -1)).reshape(known.shape)
  unknown = ~known
  count = jnp.maximum(unknown.sum(), 1)
  logvar = 2.0 * jnp.log(out.sigma_region)
  return (jnp.sum(right & unknown) / count, jnp.sum(jnp.where(unknown, logvar, 0.0)) / count)


def main(argv):
  del argv
  config = FLAGS["config"].value
  run = None if config is None else translate.translate(config)
  if run is None or run.benchmark != "sudoku_symbolic":
    raise app.UsageError(
      "--config must be a sudoku_symbolic config (and --workdir unless eval.pretrained is set)"
    )
  known_counts = [int(k) for k in FLAGS["known"].value]
  if any(not 0 <= k <= 80 for k in known_counts):
    raise app.UsageError(f"--known counts must lie in 0..80, got {known_counts}")
  apply, params, source = evaluate.load_params(run, FLAGS["workdir"].value or "")
  step = jax.jit(
    lambda params, x, known, key: one_step(apply, params, x, known, key, run.task.grid)
  )
  num = FLAGS["num"].value
  print(f"{source}: one-step prediction on {num} validation boards per row")
  print("known cells | unknown cells right | mean predicted log-variance")
  for i, k in enumerate(known_counts):
    boards, givens = sudoku.validation_set((k, k), num)
    acc, logvar = step(
      params,
      jnp.asarray(sudoku.to_symbolic(boards)),
      jnp.asarray(givens),
      jax.random.fold_in(run.key("evaluation"), i),
    )
    print(f"{k:>11} | {float(acc):>19.3f} | {float(logvar):+.2f}")


if __name__ == "__main__":
  define_flags()
  app.run(main)
