"""What reading the boards costs in an image-Sudoku refine run, and what eval.score_every saves.

    python -m experiments.studies.scoring_cost [--model mnist_sudoku_latent_19k] [--num 50]
        [--rounds 96] [--every 1,3,6] [--repeats 2] [--out OUT]

Refines `num` held-out hard puzzles of a shipped image-Sudoku latent model with its recommended
settings for `rounds` rounds, as `--mode refine` does (`experiments.evaluate.run_refine`, one
batch), once per k in `every`: k = 1 reads every round's boards inside the loop (decode each
cell, classify it), k > 1 keeps the history and reads every k-th round and the last after the
loop (`eval.score_every`). Each k runs once untimed (its compile), then `repeats` timed runs in
turn with the others, in this one process; the best of each is reported with its ratio to k = 1.
Stops with an error if a k > 1 run's figures differ from k = 1's at the rounds it scored. A
real-MNIST model needs IPR_JAX_MNIST_DIR. Writes OUT.json (default
runs/scoring_cost_<model>.json) with the config, commit and device.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

import jax
import numpy as np
from absl import flags

from experiments import common, evaluate, shipped
from ipr_jax import pretrained


def define_flags(f):
  flags.DEFINE_string(
    "model", "mnist_sudoku_latent_19k", "a shipped image-Sudoku latent model", flag_values=f
  )
  flags.DEFINE_integer("num", 50, "held-out hard puzzles (one batch)", flag_values=f)
  flags.DEFINE_integer(
    "rounds", 96, "IPR rounds of the model's recommended settings", flag_values=f
  )
  flags.DEFINE_list(
    "every", ["1", "3", "6"], "score every k-th round (1 first: the baseline)", flag_values=f
  )
  flags.DEFINE_integer("repeats", 2, "timed runs per k (the best is reported)", flag_values=f)
  flags.DEFINE_integer("seed", 0, "the refine key", flag_values=f)
  flags.DEFINE_string(
    "out", None, "output JSON (default runs/scoring_cost_<model>.json)", flag_values=f
  )


def main(argv=None) -> dict:
  argv = sys.argv[1:] if argv is None else list(argv)
  prog = "experiments.studies.scoring_cost"
  args = common.parse_flags(define_flags, argv, prog, __doc__)
  try:
    every = [int(k) for k in args.every]
  except ValueError as e:
    raise SystemExit(f"{prog}: --every wants whole numbers, got {args.every}") from e
  if not every or every[0] != 1 or any(k < 1 for k in every):
    raise SystemExit(f"{prog}: --every must start with 1 (the baseline), all >= 1; got {every}")
  if args.num < 1 or args.rounds < 1 or args.repeats < 1:
    raise SystemExit(f"{prog}: --num, --rounds and --repeats must be >= 1")
  apply, params, manifest, run = shipped.open_model("mnist_sudoku", args.model, args.seed)
  cfg = dataclasses.replace(pretrained.recommended(manifest, "hard"), rounds=args.rounds)
  items = run.task.test_items("hard", args.num)
  key = jax.random.key(args.seed)

  def once(k: int):
    scored = None if k == 1 else evaluate.scored_rounds(args.rounds, k)
    t0 = time.perf_counter()
    metrics, nfe, _ = evaluate.run_refine(
      apply, params, items, cfg, run.task, key, args.num, desc=f"every {k}", scored=scored
    )
    return time.perf_counter() - t0, metrics, nfe

  figures = {k: once(k)[1:] for k in every}  # compiles each k once
  base_metrics, base_nfe = figures[1]
  for k in every[1:]:
    at = evaluate.scored_rounds(args.rounds, k)
    metrics, nfe = figures[k]
    for name, values in metrics.items():
      if not np.allclose(values, base_metrics[name][at], atol=1e-6):
        raise SystemExit(f"{prog}: every {k}: {name} differs from every round's at {at}")
    if not np.array_equal(np.cumsum(nfe), np.cumsum(base_nfe)[at]):
      raise SystemExit(f"{prog}: every {k}: NFE differs from every round's")
  seconds = {k: [] for k in every}
  for _ in range(args.repeats):
    for k in every:
      seconds[k].append(once(k)[0])
  best = {k: min(v) for k, v in seconds.items()}
  print(
    f"{args.model}: {args.num} hard puzzles, {args.rounds} rounds of {cfg.ipr.steps_per_patch} "
    f"step(s) per cell ({int(np.sum(base_nfe))} NFE), best of {args.repeats} on "
    f"{common.device_name()}"
  )
  for k in every:
    n = len(evaluate.scored_rounds(args.rounds, k))
    print(f"  score every {k:>2} ({n:>3} rounds read): {best[k]:7.1f} s  x{best[1] / best[k]:.2f}")
  out = args.out or os.path.join("runs", f"scoring_cost_{args.model}.json")
  record = {
    "model": args.model,
    "num": args.num,
    "rounds": args.rounds,
    "steps_per_patch": cfg.ipr.steps_per_patch,
    "nfe": int(np.sum(base_nfe)),
    "seconds": {str(k): v for k, v in seconds.items()},
    "best_s": {str(k): v for k, v in best.items()},
    "speedup": {str(k): best[1] / best[k] for k in every},
    "valid_last": float(np.mean(base_metrics["valid"][-1])),
    "seed": args.seed,
    "commit": common.git_commit(),
    "device": common.device_name(),
    "command": " ".join(["python", "-m", prog, *argv]),
  }
  common.write_json(out, record)
  print(f"wrote {out}")
  return record


if __name__ == "__main__":
  main()
