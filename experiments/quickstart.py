"""Quickstart: refine held-out Sudoku puzzles with a shipped offline model, on CPU, offline.

    python -m experiments.quickstart [--benchmark sudoku_symbolic|mnist_sudoku] [--num 100]
        [--rounds R] [--out DIR]

Loads the benchmark's shipped model (package data): the symbolic-Sudoku region transformer, or
for `mnist_sudoku` (boards of handwritten 8x8 digits) the latent denoiser and its per-cell codec
(the puzzles are encoded, refined over latents, decoded and read by the digit classifier).
Draws `num` held-out puzzles (half hard, half medium), runs the SRM sampler then `rounds` IPR
rounds as one batch with the model's recommended settings, prints the valid rate per scored
round (every round up to 48 rounds; past that every k-th round, at most 49 points from round 0 to
the last, because on image boards reading a board, decode and classify, costs more than a
one-step round), and writes results.json, the budget plots and a strip of boards across rounds
into the folder it names. Under 3 minutes on 2 CPU cores.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from absl import flags
from tqdm import tqdm

from experiments import common, evaluate, plots, shipped
from ipr_jax import pretrained, refine


def define_flags(f):
  flags.DEFINE_enum(
    "benchmark",
    "sudoku_symbolic",
    tuple(shipped.MODELS),
    "symbolic cells (default) or boards of handwritten digits (latent model)",
    flag_values=f,
  )
  flags.DEFINE_integer("num", 100, "puzzles, half hard and half medium (even)", flag_values=f)
  flags.DEFINE_integer(
    "rounds",
    None,
    "IPR rounds (default: half the manifest's recommended rounds, which spend the NFE of the "
    "paper's 30-round hard budget; half keeps the quickstart under 3 minutes)",
    flag_values=f,
  )
  flags.DEFINE_integer(
    "score_every",
    None,
    "score the boards of every k-th round, plus the last (default: 1 up to 48 rounds, else the "
    "smallest k that scores at most 49 rounds)",
    flag_values=f,
  )
  flags.DEFINE_integer("seed", 0, "the key of the refine call", flag_values=f)
  flags.DEFINE_string("out", None, "output folder (default runs/quickstart-<time>)", flag_values=f)


def main(argv=None):
  argv = sys.argv[1:] if argv is None else list(argv)
  args = common.parse_flags(define_flags, argv, "experiments.quickstart", __doc__)
  if args.num < 2 or args.num % 2:
    raise SystemExit(f"--num must be an even number >= 2 (half hard, half medium), got {args.num}")
  if args.rounds is not None and args.rounds < 0:
    raise SystemExit(f"--rounds must be >= 0, got {args.rounds}")
  if args.score_every is not None and args.score_every < 1:
    raise SystemExit(f"--score_every must be >= 1, got {args.score_every}")
  t0 = time.time()
  out = args.out or os.path.join("runs", time.strftime("quickstart-%Y%m%d-%H%M%S"))
  os.makedirs(out, exist_ok=True)
  apply, params, manifest, run = shipped.open_model(
    args.benchmark, seed=args.seed, workdir=out, doubt="recommended"
  )
  model = manifest["name"]
  recommended = pretrained.recommended(manifest)
  if args.rounds is None:
    args.rounds = max(1, recommended.rounds // 2)
  scored = evaluate.scored_rounds(args.rounds, args.score_every)
  per_split, splits = args.num // 2, ("hard", "medium")
  items = [run.task.test_items(split, per_split) for split in splits]
  x = np.concatenate([it.x for it in items])
  eligible = np.concatenate([it.eligible for it in items])
  names = np.repeat(splits, per_split)
  # the model's recommended sampler and refine settings (its manifest), for --rounds rounds
  cfg = dataclasses.replace(recommended, rounds=args.rounds, keep_history=True)
  print(
    f"model {model}: {manifest['num_params']:,} params, trained {manifest['steps']} steps; "
    f"{args.num} held-out puzzles, {args.rounds} IPR rounds ({cfg.selector} selector, "
    f"ratio {cfg.resampling_ratio}, {cfg.ipr.steps_per_patch} steps per cell, "
    f"{cfg.ipr.variance} reverse std, {pretrained.recommended_doubt(manifest)} doubt) on "
    f"{common.device_name()}"
  )
  with tqdm(total=2, desc=f"refine ({args.num} puzzles as one batch)", leave=False) as bar:
    res = refine.refine(
      apply, params, jax.random.key(args.seed), jnp.asarray(x), jnp.asarray(eligible), cfg
    )
    jax.block_until_ready(res.x)
    bar.update()
    bar.set_description(f"score {len(scored)} rounds")
    metrics = evaluate.score_history(
      run.task.metric_fn, run.task.metric_params, res.history, scored
    )
    jax.block_until_ready(metrics)
    bar.update()
  command = shlex.join(["python", "-m", "experiments.quickstart", *argv])
  results = common.results_record(
    run,
    splits=splits,
    num_samples=per_split,
    rounds=args.rounds,
    headline="valid",
    checkpoint=f"ipr_jax/assets/{model}",
    command=command,
    variant="quickstart",
  )
  # NFE per scored entry: round 0's, then the rounds since the previous scored one (their
  # cumulative sum is the NFE spent by each scored round, as for every-round curves)
  cumulative = np.cumsum(np.asarray(res.nfe))[scored]
  nfe, method = np.diff(cumulative, prepend=0).tolist(), f"ipr_{cfg.selector}"
  for s in splits:
    results["scored"][s] = {method: scored}
    results["nfe"][s] = {method: nfe}
    results["metrics"][s] = {
      method: {k: np.asarray(v)[:, names == s].mean(axis=1).tolist() for k, v in metrics.items()}
    }
  results["per_sample"] = {
    "valid": np.asarray(metrics["valid"]).T.tolist(),
    "split": names.tolist(),
  }
  header = f"\n{'round':>5} {'NFE':>6} " + " ".join(f"{s + ' valid':>12}" for s in splits)
  print(header + "   (NFE: cumulative, per puzzle)")
  for i, r in enumerate(scored):
    cells = " ".join(f"{results['metrics'][s][method]['valid'][i]:>12.3f}" for s in splits)
    print(f"{r:>5} {cumulative[i]:>6} {cells}")
  results["seconds"] = time.time() - t0
  common.write_json(os.path.join(out, "results.json"), results)
  paths = plots.budget_curves(results, "valid", out)
  hist = np.asarray(res.history)
  show = [0, per_split]  # the first hard and the first medium puzzle (the task's strip decodes
  # latent boards and marks the cells the classifier reads as breaking a rule)
  paths.append(
    run.task.strip(
      hist[:, show],
      {"givens": ~eligible[show], "row_labels": ["hard puzzle", "medium puzzle"]},
      os.path.join(out, "strip.png"),
      evaluate.shown_rounds(args.rounds),
    )
  )
  print(
    f"\nwrote {out}/results.json and {', '.join(os.path.basename(p) for p in paths)} "
    f"in {results['seconds']:.0f} s"
  )
  return results


if __name__ == "__main__":
  main()
