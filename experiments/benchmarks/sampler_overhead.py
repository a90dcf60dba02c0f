"""Sampler overhead and speed-up over the reference design, measured side by side in one run.

    python -m experiments.benchmarks.sampler_overhead [--rounds 3] [--reference_samples 2]

For a smoke-size and a cpu-size Sudoku region transformer (untrained: speed does not depend on
the weights) it prints, per batch size: refine wall time, NFE (network evaluations run), the time
of one jitted batched denoiser call, the overhead ratio wall / (NFE x call), and samples/s. Then
the reference design: the same denoiser driven one sample at a time with the step loop, the
schedule matrix and the region selection in Python and the state on the host between steps,
and the samples/s ratio of `refine` (batch 64) over it.
"""
from __future__ import annotations

import argparse
import random
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments import common, tasks
from experiments.configs import sudoku_symbolic
from ipr_jax import denoisers, flow, refine, regions, schedules


def _timed(fn, *args):
  t0 = time.perf_counter()
  jax.block_until_ready(fn(*args))
  return time.perf_counter() - t0


def call_time(apply, params, x, t, repeats=20) -> float:
  f = jax.jit(apply)
  jax.block_until_ready(f(params, x, t))
  return float(np.median([_timed(f, params, x, t) for _ in range(repeats)]))


def reference_design(apply, params, x, eligible, cfg: refine.RefineConfig, seed=0) -> int:
  """One sample, host-side loop like the PyTorch reference; returns the NFE it ran."""
  grid = regions.make_grid(9, 9, 1)
  net = jax.jit(apply)

  @jax.jit
  def move(key, z, t, s, out):
    return flow.reverse_step(key, z, regions.to_pixels(t, grid), regions.to_pixels(s, grid),
                             out.velocity, out.v_interp, alpha=cfg.ipr.alpha)

  rng, nfe = random.Random(seed), 0
  key = jax.random.key(seed)

  def srm(z, unknown, known_vals, sc):
    nonlocal nfe, key
    unknown = unknown.copy()
    n = int(unknown.sum())
    plan = schedules.sequential_plan(n, sc.steps_per_patch, sc.overlap)
    m, lc = plan.total_steps, plan.proto_len
    T = np.tile(unknown.astype(np.float32), (m + 1, 1))
    T[m] = 0.0
    c = 0
    for r in range(m):
      out = net(params, jnp.asarray(z), jnp.asarray(T[r:r + 1]))   # host -> device
      sigma = np.asarray(out.sigma_region[0])                         # device -> host
      nfe += 1
      while c < n and plan.block_starts[c] == r:
        j = int(np.argmin(np.where(unknown, sigma, np.inf)))
        unknown[j] = False
        for i in range(min(lc, m - r)):
          T[r + i, j] = min((lc - i) / lc, T[r + i, j])
        T[r + lc:m, j] = 0.0
        c += 1
      key, sub = jax.random.split(key)
      z = np.asarray(move(sub, jnp.asarray(z), jnp.asarray(T[r:r + 1]), jnp.asarray(T[r + 1:r + 2]),
                          out))
      z = np.where(unknown_pixels(T[0] == 0), known_vals, z)
    return z

  def unknown_pixels(known):
    return known.reshape(1, 9, 9, 1)

  elig = np.asarray(eligible)
  z = np.asarray(jax.random.normal(jax.random.key(seed), x.shape))
  z = srm(np.where(unknown_pixels(~elig[0]), x, z), elig[0], x, cfg.initial)
  cells = list(np.flatnonzero(elig[0]))
  for _ in range(cfg.rounds):
    chosen = rng.sample(cells, refine.num_resampled(len(cells), cfg.resampling_ratio))
    sel = np.zeros((1, 81), bool)
    sel[0, chosen] = True
    noise = np.random.default_rng(rng.randrange(2**32)).standard_normal(z.shape).astype(np.float32)
    zz = np.where(unknown_pixels(sel[0]), noise, z)
    z = srm(zz, sel[0], z, cfg.ipr)
  return nfe


def measure(variant: str, rounds: int, batches, ref_samples: int) -> dict:
  config = sudoku_symbolic.get_config(variant)
  task = tasks.make_task(config)
  apply, params = denoisers.build(task.model_config, jax.random.key(0))
  cfg = common.refine_config(config, rounds=rounds)
  items = task.test_items("hard", max(batches))
  rows = []
  for b in batches:
    x, elig = jnp.asarray(items.x[:b]), jnp.asarray(items.eligible[:b])
    jax.block_until_ready(refine.refine(apply, params, jax.random.key(1), x, elig, cfg).x)
    t0 = time.perf_counter()
    res = refine.refine(apply, params, jax.random.key(2), x, elig, cfg)
    jax.block_until_ready(res.x)
    wall = time.perf_counter() - t0
    nfe = int(np.sum(res.nfe))
    call = call_time(apply, params, x, jnp.full((b, 81), 0.5))
    rows.append(dict(batch=b, wall_s=wall, nfe=nfe, call_s=call, overhead=wall / (nfe * call),
                     samples_per_s=b / wall))
  ref = None
  if ref_samples:
    x1, e1 = items.x[:1], items.eligible[:1]
    reference_design(apply, params, x1, e1, cfg, seed=99)  # compile
    t0 = time.perf_counter()
    ref_nfe = sum(reference_design(apply, params, items.x[i:i + 1], items.eligible[i:i + 1], cfg, i)
                  for i in range(ref_samples))
    wall = time.perf_counter() - t0
    ref = dict(samples=ref_samples, wall_s=wall, nfe=ref_nfe, samples_per_s=ref_samples / wall)
  return dict(variant=variant, rows=rows, reference=ref)


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--rounds", type=int, default=3)
  ap.add_argument("--batches", default="1,16,64")
  ap.add_argument("--reference_samples", type=int, default=2)
  ap.add_argument("--variants", default="smoke,cpu")
  args = ap.parse_args()
  batches = [int(b) for b in args.batches.split(",")]
  print(f"device: {common.device_name()}  rounds: {args.rounds}  Sudoku hard puzzles, "
        f"initial 3 steps/cell, IPR 10 steps/cell overlap 0.8, ratio 0.25")
  for variant in args.variants.split(","):
    out = measure(variant, args.rounds, batches, args.reference_samples)
    print(f"\n== {variant}-size denoiser ==")
    print(f"{'batch':>5} {'wall s':>8} {'NFE':>5} {'call ms':>8} {'overhead':>8} {'samples/s':>10}")
    for r in out["rows"]:
      print(f"{r['batch']:>5} {r['wall_s']:>8.2f} {r['nfe']:>5} {1e3 * r['call_s']:>8.2f} "
            f"{r['overhead']:>8.3f} {r['samples_per_s']:>10.2f}")
    ref = out["reference"]
    if ref:
      best = out["rows"][-1]
      print(f"reference design (1 sample at a time, host loop): {ref['samples']} samples in "
            f"{ref['wall_s']:.2f} s, {ref['nfe']} NFE, {ref['samples_per_s']:.3f} samples/s")
      print(f"refine at batch {best['batch']} / reference design: "
            f"{best['samples_per_s'] / ref['samples_per_s']:.1f}x samples/s")


if __name__ == "__main__":
  main()
