"""When to stop restarting a puzzle: adaptive restarts on unique-solution Sudoku (issue 36), and
on image Sudoku (issue 33: --benchmark mnist_sudoku, the latent model, hard or medium boards).

    python -m experiments.studies.adaptive_restarts --mode table --split minimal --validation
        --num 200 --restarts 24 [--benchmark sudoku_symbolic] [--model NAME] [--out PREFIX]
    python -m experiments.studies.adaptive_restarts --mode solve --split minimal --num 1000
        --chains K --accept_below A

Restarts are the shipped model's recommended round-0 pass for the level (independent SRM passes;
with --rounds R each restart also runs R IPR rounds of the model's recommended settings), each
scored by the probe as `RefineConfig(pick="probe")` scores it; no Sudoku rule is read while
sampling, the rules only score (exact = valid on the unique levels; on image Sudoku, valid as the
digit classifier reads the decoded board).
- `table`: R restarts of N puzzles, drawn `--chains_per_call` at a time (restart r is chain
  r % c of the call keyed fold_in(key, r // c)). Writes OUT_table_<split>[_val].npz (probe,
  exact, item_nfe, each [R, N]) and OUT_table_<split>[_val].json: the per-restart exact rate, the
  probe's AUC, and every policy simulated from the table (restarts are independent, so the table
  answers any stopping rule): fixed K with the probe pick, and adaptive (stop at the first
  restart whose probe is below a threshold, at most K, else the least doubted), each with its
  exact rate and its mean and largest NFE per puzzle; the best adaptive policy within --budget
  mean NFE per puzzle; and a plot of exact against mean NFE.
- `summarize`: the JSON and plot again from OUT_table_<split>[_val].npz (e.g. another --budget).
- `solve`: `ipr_jax.restarts.solve` with (--chains, --accept_below) on N puzzles; writes
  OUT_solve_<split>.json (exact, mean and largest NFE per puzzle, restarts per puzzle, seconds).
Choose the policy on validation puzzles (--validation), measure it on the test puzzles.
`--steps_per_patch`, `--alpha`, `--temperature` change the pass (and the files' names).
"""

from __future__ import annotations

import dataclasses
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags
from tqdm import tqdm

from experiments import common, shipped
from ipr_jax import pretrained, refine, restarts

PAPER_BUDGET = 1683  # NFE per puzzle of the paper's 30 hard rounds (docs/results/sudoku_unique.md)
OUT = {  # --out's default prefix per benchmark
  "sudoku_symbolic": "docs/results/sudoku_unique/adaptive",
  "mnist_sudoku": "docs/results/mnist_sudoku/adaptive",
}
THRESHOLD_QUANTILES = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 1.0)  # of the right restarts' probe


def restart_table(apply, params, items, cfg, task, key, num_restarts, per_call, batch, rounds=0):
  """(probe, exact, item_nfe) each [R, N]: R restarts of every item (each the pass and then
  `rounds` IPR rounds of cfg), the last round probed with refine's keys and scored."""
  if num_restarts % per_call:
    raise ValueError(f"--restarts {num_restarts} is not a multiple of --chains_per_call {per_call}")
  cfg = dataclasses.replace(cfg, rounds=rounds, chains=per_call, pick=None, accept_below=None)
  n = len(items.x)
  rows = {k: np.zeros((num_restarts, n), d) for k, d in (("probe", np.float32), ("exact", bool))}
  rows["item_nfe"] = np.zeros((num_restarts, n), np.int32)
  calls = [(j, lo) for j in range(num_restarts // per_call) for lo in range(0, n, batch)]
  for j, lo in tqdm(calls, desc="restart table", unit="call"):
    hi, ids = min(lo + batch, n), np.arange(lo, min(lo + batch, n))
    call_key = jax.random.fold_in(key, j)
    x, eligible = jnp.asarray(items.x[lo:hi]), jnp.asarray(items.eligible[lo:hi])
    res = refine.refine(
      apply,
      params,
      call_key,
      x,
      eligible,
      cfg,
      task.metric_fn,
      metric_params=task.metric_params,
      item_ids=ids,
    )
    span = slice(j * per_call, (j + 1) * per_call)  # this call's restarts
    probes = refine.probe_chains(apply, params, call_key, ids, res.x, eligible, cfg, rounds)
    rows["probe"][span, lo:hi] = np.asarray(probes)
    rows["exact"][span, lo:hi] = np.asarray(res.metrics["valid"])[:, -1] > 0.5
    rows["item_nfe"][span, lo:hi] = np.asarray(res.item_nfe)[:, -1] + cfg.probe_draws
  return rows


def simulate(probe, exact, item_nfe, threshold, cap: int) -> dict:
  """A stopping rule on a restart table [R, N]: per puzzle, restarts 0..cap-1 in order, stop at
  the first probe below `threshold` (None: never), keep the least doubted restart run.
  Mirrors refine.chains_run + pick_chains."""
  p, n = probe[:cap], exact.shape[1]
  ok = p < (-np.inf if threshold is None else threshold)
  stop = np.where(ok.any(0), ok.argmax(0), cap - 1)
  ran = np.arange(cap)[:, None] <= stop
  chosen = np.where(ran, p, np.inf).argmin(0)
  nfe = np.where(ran, item_nfe[:cap], 0).sum(0)
  return {
    "threshold": None if threshold is None else round(float(threshold), 6),
    "cap": cap,
    "exact": round(float(exact[chosen, np.arange(n)].mean()), 4),
    "mean_nfe": round(float(nfe.mean()), 1),
    "max_nfe": int(nfe.max()),
    "mean_restarts": round(float((stop + 1).mean()), 2),
    "any": round(float(exact[:cap].any(0).mean()), 4),
  }


def auc(score_wrong, score_right) -> float:
  """P(a wrong restart's probe > a right one's): how well the probe ranks (ties count half)."""
  w, r = np.asarray(score_wrong)[:, None], np.asarray(score_right)[None]
  return float(np.mean((w > r) + 0.5 * (w == r))) if w.size and r.size else float("nan")


def summarize(rows: dict, budget: int) -> dict:
  probe, exact, nfe = rows["probe"], rows["exact"], rows["item_nfe"]
  num = probe.shape[0]
  right = probe[exact]  # no right restart: no threshold to set, fixed K only
  thresholds = sorted({float(np.quantile(right, q)) for q in THRESHOLD_QUANTILES if right.size})
  fixed = [simulate(probe, exact, nfe, None, k) for k in range(1, num + 1)]
  adaptive = [simulate(probe, exact, nfe, t, k) for t in thresholds for k in range(1, num + 1)]
  within = [p for p in adaptive if p["mean_nfe"] <= budget]
  fixed_within = [p for p in fixed if p["mean_nfe"] <= budget]
  return {
    "per_restart_exact": round(float(exact.mean()), 4),
    "probe_auc": round(auc(probe[~exact], probe[exact]), 4),
    "false_accept_rate": {  # share of wrong restarts a threshold would accept
      f"{t:.6f}": round(float((probe[~exact] < t).mean()), 4) for t in thresholds
    },
    "budget": budget,
    "best_fixed": max(fixed_within, key=lambda p: p["exact"]) if fixed_within else None,
    "best_adaptive": max(within, key=lambda p: (p["exact"], -p["mean_nfe"])) if within else None,
    "fixed": fixed,
    "adaptive": adaptive,
  }


def plot(summary: dict, title: str, path: str) -> str:
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(8, 5.5))
  f = summary["fixed"]
  ax.plot(
    [p["mean_nfe"] for p in f], [p["exact"] for p in f], "ko-", ms=3, label="K restarts, probe pick"
  )
  ax.plot([p["mean_nfe"] for p in f], [p["any"] for p in f], "k:", label="any of K restarts right")
  by_t = {}
  for p in summary["adaptive"]:
    by_t.setdefault(p["threshold"], []).append(p)
  cmap = plt.get_cmap("viridis")
  for i, (t, ps) in enumerate(sorted(by_t.items())):
    ax.plot(
      [p["mean_nfe"] for p in ps],
      [p["exact"] for p in ps],
      "o-",
      ms=2.5,
      lw=1,
      color=cmap(i / max(len(by_t) - 1, 1)),
      label=f"stop when probe < {t:.4f} (caps 1..{len(ps)})",
    )
  ax.axvline(summary["budget"], color="gray", lw=0.8, ls="--", label="budget (mean NFE per puzzle)")
  ax.set_xlabel("mean denoiser evaluations (NFE) per puzzle")
  ax.set_ylabel("valid (exact, on one-solution puzzles)")
  ax.set_title(title, fontsize=10)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7, loc="lower right")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def define_flags(f):
  flags.DEFINE_enum("mode", "table", ["table", "summarize", "solve"], "what to run", flag_values=f)
  flags.DEFINE_enum(
    "benchmark", "sudoku_symbolic", tuple(shipped.MODELS), "the puzzles' benchmark", flag_values=f
  )
  flags.DEFINE_string("model", None, "shipped model (default: the benchmark's)", flag_values=f)
  flags.DEFINE_string("split", "minimal", "unique-solution level", flag_values=f)
  flags.DEFINE_bool("validation", False, "validation puzzles (choose a policy)", flag_values=f)
  flags.DEFINE_integer("num", 200, "puzzles", flag_values=f)
  flags.DEFINE_integer("seed", 0, "key of the restarts", flag_values=f)
  flags.DEFINE_integer("restarts", 24, "table: restarts per puzzle", flag_values=f)
  flags.DEFINE_integer("chains_per_call", 4, "table: restarts per refine call", flag_values=f)
  flags.DEFINE_integer("rounds", 0, "table: IPR rounds of each restart", flag_values=f)
  flags.DEFINE_integer("batch", 200, "table: puzzles per call; solve: slots", flag_values=f)
  flags.DEFINE_integer("budget", PAPER_BUDGET, "mean NFE per puzzle allowed", flag_values=f)
  flags.DEFINE_integer("chains", None, "solve: most restarts per puzzle", flag_values=f)
  flags.DEFINE_float("accept_below", None, "solve: stop below this probe", flag_values=f)
  flags.DEFINE_integer("steps_per_patch", None, "the pass's steps per cell (3)", flag_values=f)
  flags.DEFINE_float("alpha", None, "the pass's stochasticity (0.5)", flag_values=f)
  flags.DEFINE_float("temperature", None, "factor on the pass's step std (1)", flag_values=f)
  flags.DEFINE_string("out", None, "prefix (default: OUT[benchmark])", flag_values=f)


def main(argv=None):
  argv = sys.argv[1:] if argv is None else list(argv)
  args = common.parse_flags(define_flags, argv, "experiments.studies.adaptive_restarts", __doc__)
  if args.mode == "solve" and (args.chains is None or args.accept_below is None):
    raise SystemExit("--mode solve needs --chains and --accept_below (a policy the table chose)")
  t0 = time.time()
  out = args.out or OUT[args.benchmark]
  apply, params, manifest, run = shipped.open_model(args.benchmark, args.model, args.seed)
  model = manifest["name"]
  cfg = pretrained.recommended(manifest, args.split)
  changes = {
    k: getattr(args, k)
    for k in ("steps_per_patch", "alpha", "temperature")
    if getattr(args, k) is not None
  }
  cfg = dataclasses.replace(cfg, initial=dataclasses.replace(cfg.initial, **changes))
  items = run.task.test_items(args.split, args.num, validation=args.validation)
  key = jax.random.key(args.seed)
  named = {**changes, **({"rounds": args.rounds} if args.rounds else {})}  # in the file names
  tag = f"{args.split}{'_val' if args.validation else ''}" + "".join(
    f"_{k}{v:g}" for k, v in named.items()
  )
  record = {
    "model": model,
    "split": args.split,
    "validation": args.validation,
    "num": args.num,
    "seed": args.seed,
    "commit": common.git_commit(),
    "device": common.device_name(),
    "command": "python -m experiments.studies.adaptive_restarts " + " ".join(argv),
    "pass": dataclasses.asdict(cfg.initial),
    "rounds": args.rounds,
    "ipr": dataclasses.asdict(cfg.ipr) if args.rounds else None,
  }
  if args.mode in ("table", "summarize"):
    path = f"{out}_table_{tag}.npz"
    if args.mode == "table":
      rows = restart_table(
        apply,
        params,
        items,
        cfg,
        run.task,
        key,
        args.restarts,
        args.chains_per_call,
        args.batch,
        args.rounds,
      )
      np.savez(path, **rows)
    else:
      rows = dict(np.load(path))
      if rows["probe"].shape != (args.restarts, args.num):
        raise SystemExit(f"{path} holds {rows['probe'].shape} restarts x puzzles, not the flags'")
    record.update(summarize(rows, args.budget), seconds=round(time.time() - t0, 1))
    title = f"{model}: {args.num} {'validation' if args.validation else 'test'} {args.split} puzzles, {args.restarts} restarts each"
    record["plot"] = plot(record, title, f"{out}_table_{tag}.png")
    common.write_json(f"{out}_table_{tag}.json", record)
    for name in ("best_fixed", "best_adaptive"):
      print(f"{name}: {record[name]}")
    print(f"per restart {record['per_restart_exact']}, probe AUC {record['probe_auc']}")
    return record
  policy = dataclasses.replace(
    cfg, rounds=args.rounds, chains=args.chains, accept_below=args.accept_below
  )
  res = restarts.solve(
    apply,
    params,
    key,
    items.x,
    items.eligible,
    policy,
    run.task.metric_fn,
    metric_params=run.task.metric_params,
    slots=args.batch,
    progress=True,
  )
  nfe, ran = np.asarray(res.item_nfe)[-1], np.asarray(res.ran).sum(0)
  record.update(
    chains=args.chains,
    accept_below=args.accept_below,
    exact=round(float(np.asarray(res.metrics["valid"])[-1].mean()), 4),
    mean_nfe=round(float(nfe.mean()), 1),
    max_nfe=int(nfe.max()),
    mean_restarts=round(float(ran.mean()), 2),
    restarts_histogram=np.bincount(ran, minlength=args.chains + 1)[1:].tolist(),
    seconds=round(time.time() - t0, 1),
  )
  common.write_json(f"{out}_solve_{tag}.json", record)
  print(
    f"exact {record['exact']:.3f}, mean NFE {record['mean_nfe']}, max {record['max_nfe']}, "
    f"restarts {record['mean_restarts']}, {record['seconds']} s"
  )
  return record


if __name__ == "__main__":
  main()
