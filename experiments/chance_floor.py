"""Chance floors: what each benchmark's evaluator scores on inputs that are not samples of it.

    python -m experiments.chance_floor [--num 100] [--out docs/results/chance_floor.json]

Inputs (model scale [-1, 1], the test items' shape): N(0, 1) noise, uniform[-1, 1] noise, blank
black / white images, and the ground truth with its regions shuffled. A headline metric that is
not near 0 on all of them can be fooled by noise; training keeps a "best" step only above the
floor (`floor_of`).
"""

from __future__ import annotations


import sys

import jax
from absl import flags
import jax.numpy as jnp
import numpy as np

from experiments import common, translate
from ipr_jax import regions

INPUTS = ("normal_noise", "uniform_noise", "blank_black", "blank_white", "shuffled_truth")


def floor_inputs(x: np.ndarray, grid: regions.RegionGrid, key) -> dict:
  """{input name: f32[N, H, W, C]} built like the items x f32[N, H, W, C]."""
  k1, k2, k3 = jax.random.split(key, 3)
  patches = regions.patchify(jnp.asarray(x), grid)  # [N, R, p*p*C]
  shuffled = jax.vmap(jax.random.permutation)(jax.random.split(k3, len(x)), patches)
  return {
    "normal_noise": jax.random.normal(k1, x.shape),
    "uniform_noise": jax.random.uniform(k2, x.shape, minval=-1.0, maxval=1.0),
    "blank_black": jnp.full(x.shape, -1.0),
    "blank_white": jnp.ones(x.shape),
    "shuffled_truth": regions.unpatchify(shuffled, grid),
  }


def _means(task, inputs: dict) -> dict:
  return {
    name: {k: float(np.mean(v)) for k, v in task.metrics(imgs).items()}
    for name, imgs in inputs.items()
  }


def measure(task, x: np.ndarray, key) -> dict:
  """{input name: {metric: mean}} for the floor inputs and the ground truth itself."""
  return _means(task, dict(floor_inputs(x, task.grid, key), ground_truth=jnp.asarray(x)))


def floor_of(task, x: np.ndarray, key) -> float:
  """The highest headline mean over the noise and blank inputs: the bar a trained model must
  clear. (Shuffled truth is reported but not used here: for Even Pixels, whose rule is about
  pixel counts only, a region-shuffled valid image is valid.)"""
  inputs = floor_inputs(x, task.grid, key)
  means = _means(task, {n: inputs[n] for n in INPUTS if n != "shuffled_truth"})
  return max(m[task.headline] for m in means.values())


def define_flags(f):
  flags.DEFINE_integer("num", 100, "held-out items per benchmark", flag_values=f)
  flags.DEFINE_integer("seed", 0, "the key of the noise inputs", flag_values=f)
  flags.DEFINE_string("out", None, "write the table as JSON here", flag_values=f)


def main(argv=None):
  argv = sys.argv[1:] if argv is None else list(argv)
  args = common.parse_flags(define_flags, argv, "experiments.chance_floor", __doc__)
  import importlib

  table = {}
  for bench in ("sudoku_symbolic", "mnist_sudoku", "even_pixels", "counting_polygons"):
    config = importlib.import_module(f"experiments.configs.{bench}").get_config("cpu")
    run = translate.translate(config)
    task, split = run.task, run.plan.splits[0]
    items = task.test_items(split, args.num)
    m = measure(task, items.x, jax.random.key(args.seed))
    table[bench] = {
      "headline": task.headline,
      "split": split,
      "num": args.num,
      "metrics": m,
    }
    print(f"{bench} ({task.headline}, {args.num} items of {split}):")
    for name, vals in m.items():
      print(f"  {name:<16} " + "  ".join(f"{k}={v:.3f}" for k, v in vals.items()))
  if args.out:
    common.write_json(args.out, {"seed": args.seed, "commit": common.git_commit(), **table})
    print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
