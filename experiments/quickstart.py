"""Quickstart: refine held-out Sudoku puzzles with the shipped offline model, on CPU, offline.

    python -m experiments.quickstart [--num 100] [--rounds 15] [--out DIR]

Loads the shipped symbolic-Sudoku region transformer (package data), draws `num` held-out
puzzles (half hard, half medium) and runs the SRM sampler then `rounds` IPR rounds as one
batch, printing the valid rate per round, and writes results.json, the budget plots and a strip
of samples across rounds into the folder it names. About 3 minutes on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments import common, plots
from experiments.configs import sudoku_symbolic
from ipr_jax import pretrained, refine
from ipr_jax.data import sudoku
from ipr_jax.evaluation import sudoku as sudoku_eval

MODEL = "sudoku_symbolic_cpu"


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--num", type=int, default=100, help="puzzles (half hard, half medium)")
  ap.add_argument("--rounds", type=int, default=15)
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--out", default=None, help="output folder (default runs/quickstart-<time>)")
  args = ap.parse_args(argv)
  if args.num < 2:
    raise SystemExit("--num must be at least 2 (half hard, half medium)")
  t0 = time.time()
  out = args.out or os.path.join("runs", time.strftime("quickstart-%Y%m%d-%H%M%S"))
  os.makedirs(out, exist_ok=True)
  apply, params, manifest = pretrained.load(MODEL)
  half = args.num // 2
  splits = {"hard": half, "medium": args.num - half}
  boards, givens, names = [], [], []
  for split, n in splits.items():
    b, g = sudoku.test_set(split, n)
    boards.append(b)
    givens.append(g)
    names += [split] * n
  boards, givens, names = np.concatenate(boards), np.concatenate(givens), np.array(names)
  config = sudoku_symbolic.get_config("cpu")
  cfg = common.refine_config(config, "uniform", args.rounds, keep_history=True)
  print(f"model {MODEL}: {manifest['num_params']:,} params, trained {manifest['steps']} steps; "
        f"{args.num} held-out puzzles, {args.rounds} IPR rounds on {common.device_name()}")
  res = refine.refine(apply, params, jax.random.key(args.seed),
                      jnp.asarray(sudoku.to_symbolic(boards)), jnp.asarray(~givens), cfg,
                      sudoku_eval.symbolic_metrics)
  valid = np.asarray(res.metrics["valid"])
  nfe = np.asarray(res.nfe).tolist()
  results = {"benchmark": "sudoku_symbolic", "variant": "quickstart", "split": list(splits),
             "num_samples": splits, "seed": args.seed, "rounds": list(range(args.rounds + 1)),
             "nfe": {s: {"ipr_uniform": nfe} for s in splits},
             "metrics": {s: {"ipr_uniform": {
                 k: np.asarray(v)[:, names == s].mean(axis=1).tolist()
                 for k, v in res.metrics.items()}} for s in splits},
             "per_sample": {"valid": valid.T.tolist(), "split": names.tolist()},
             "config": config.to_dict(), "checkpoint": f"ipr_jax/assets/{MODEL}",
             "commit": common.git_commit(), "device": common.device_name()}
  print(f"\n{'round':>5} {'NFE':>5} " + " ".join(f"{s + ' valid':>12}" for s in splits))
  for r in range(args.rounds + 1):
    cells = " ".join(f"{results['metrics'][s]['ipr_uniform']['valid'][r]:>12.3f}" for s in splits)
    print(f"{r:>5} {nfe[r]:>5} {cells}")
  results["seconds"] = time.time() - t0
  common.write_json(os.path.join(out, "results.json"), results)
  paths = plots.budget_curves(results, "valid", out)
  hist = np.asarray(res.history)
  show = [int(np.flatnonzero(names == "hard")[0]), int(np.flatnonzero(names == "medium")[0])]
  rounds = sorted({0, 1, args.rounds // 2, args.rounds})
  paths.append(plots.sudoku_strip(hist[:, show], givens[show], os.path.join(out, "strip.png"),
                                  rounds))
  print(f"\nwrote {out}/results.json and {', '.join(os.path.basename(p) for p in paths)} "
        f"in {results['seconds']:.0f} s")
  return results


if __name__ == "__main__":
  main()
