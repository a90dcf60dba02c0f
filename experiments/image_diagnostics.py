"""Why an image model scores what it scores: denoising error by noise level, and the contrast of
its samples against the data's, from our sequential sampler and from a plain Euler pass.

    python -m experiments.image_diagnostics --config experiments/configs/even_pixels.py:cpu \
        --workdir runs/ep_cpu [--num 16]

(or `--config.eval.pretrained=even_pixels` for a shipped model). Prints, on `num` held-out items:
mean |x_hat - x| with every region at noise level t (the model's one-shot denoising), and the
mean of each pixel's largest and smallest channel (contrast; Even Pixels' truth is 0.40 / -1.00)
for the truth, the round-0 sampler of the config and a 100-step Euler pass over all regions at
once. Samples much flatter than the truth under both samplers point at the model, not the sampler.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from experiments import evaluate, translate
from ipr_jax import flow, regions, sampling

FLAGS = {}


def define_flags():
  """The command line's flags, defined when run as a script (not at import, so that tests can
  import this module beside others that define --config, e.g. experiments.main)."""
  FLAGS.update(
      config=config_flags.DEFINE_config_file("config", None, "experiment config", lock_config=True),
      workdir=flags.DEFINE_string("workdir", None, "training run directory"),
      num=flags.DEFINE_integer("num", 16, "held-out items"))


LEVELS = (0.02, 0.1, 0.3, 0.6, 0.9)


def denoising_error(apply, params, x, grid, t: float, key) -> float:
  """Mean |x_hat - x| with every region of `x` noised to level t."""
  eps = jax.random.normal(key, x.shape)
  t_region = jnp.full((x.shape[0], grid.num_regions), t, jnp.float32)
  t_pixel = regions.to_pixels(t_region, grid)
  z = flow.interpolate(x, eps, t_pixel)
  x_hat = flow.x_hat(z, t_pixel, apply(params, z, t_region).velocity)
  return float(jnp.abs(x_hat - x).mean())


def euler(apply, params, z, grid, steps: int = 100):
  """All regions together from t = 1 to 0 in `steps` Euler steps of the velocity."""
  ts = np.linspace(1.0, 0.0, steps + 1)
  step = jax.jit(lambda params, z, t, dt: z - dt * apply(
      params, z, jnp.full((z.shape[0], grid.num_regions), t, jnp.float32)).velocity)
  for i in range(steps):
    z = step(params, z, ts[i], ts[i] - ts[i + 1])
  return z


def contrast(x) -> str:
  x = np.asarray(x)
  return f"largest channel {x.max(-1).mean():+.3f}, smallest {x.min(-1).mean():+.3f}"


def main(argv):
  del argv
  config = FLAGS["config"].value
  num = FLAGS["num"].value
  if config is None:
    raise app.UsageError("--config is required (and --workdir unless eval.pretrained is set)")
  run = translate.translate(config)
  apply, params, source = evaluate.load_params(config, run, FLAGS["workdir"].value or "")
  grid = run.task.grid
  x = jnp.asarray(run.task.test_items(config.eval.splits[0], num).x)
  print(f"{source}: {num} held-out {config.benchmark} items")
  for i, t in enumerate(LEVELS):
    err = denoising_error(apply, params, x, grid, t, jax.random.key(100 + i))
    print(f"  one-shot denoising at t = {t:.2f}: mean |x_hat - x| = {err:.3f}")
  z0 = jax.random.normal(jax.random.key(config.seed), x.shape)
  res = sampling.sample(apply, params, jax.random.key(config.seed + 1), z0,
                        jnp.zeros((x.shape[0], grid.num_regions), bool), x, run.sampler)
  metric = run.task.metrics
  for name, sample in (("truth", x), ("round-0 sampler", res.x),
                       ("Euler, 100 steps, all regions", euler(apply, params, z0, grid))):
    score = {k: round(float(np.mean(v)), 3) for k, v in metric(sample).items()}
    print(f"  {name:<30} {contrast(sample)}  {score}")


if __name__ == "__main__":
  define_flags()
  app.run(main)
