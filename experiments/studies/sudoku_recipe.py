"""The Sudoku recipe study (docs/results/sudoku_symbolic.md): train one row per recipe change, score it on
the same held-out puzzles, one JSON line per row.

    python -m experiments.studies.sudoku_recipe --rows baseline,ts_board_beta --out runs/recipe

Every row is the `sudoku_symbolic.py:cpu` config plus the row's overrides (dotted keys), trained
for `--steps` (unless the row sets `train.steps`) into OUT/<row>/ (resumable: rerun the same
command), then scored with the last step's EMA params: round 0 and `--hard_rounds` uniform IPR
rounds on `--puzzles` hard test puzzles, round 0 and `--medium_rounds` on medium ones, with the
reverse std `--variance` (default the config's: learned_range, the papers'; fixed_small scores a
trained row again without retraining, e.g. rows that train with VLB weight 0 and leave `v`
untrained). Rows that already have a result line for that variance are skipped. `--table` prints
the markdown table of OUT/results.jsonl. A row that sets `eval.pretrained` scores those shipped
weights as they are (no training; CPU minutes: their manifest's training wall time).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import operator
import os
import shlex
import time

import jax
import ml_collections
import numpy as np
from absl import app, flags, logging

from experiments import common, evaluate, tables, train, translate
from experiments.configs import sudoku_symbolic
from ipr_jax import flow, pretrained

# each row: (what changed, overrides on the cpu config). Rows build on the winners of earlier
# rows; a row's overrides are written out in full so that it reads on its own.
_BOARD = {"time_sampler.kind": "board_beta"}
_NOVLB = {**_BOARD, "loss.vlb_weight": 0.0}
_FEASIBILITY = {
  **_NOVLB,
  "optim.ema_decay": 0.998,
  "optim.weight_decay": 0.01,
  "optim.b1": 0.9,
  "optim.decay_steps": 0,
}
ROWS = {
  "baseline": ("cpu config as shipped (mean_beta, VLB 1, sigma 0.01, EMA 0.995, cosine)", {}),
  "ts_independent": ("time sampler independent", {"time_sampler.kind": "independent"}),
  "ts_board_beta": ("time sampler board_beta (c = 20)", _BOARD),
  "ts_mean_beta_sharp4": (
    "mean_beta, sharpness 0.25 (wider per-board spread)",
    {"time_sampler.sharpness": 0.25},
  ),
  "add_zeros": (
    "mean_beta + add_zeros (the papers' sampler with some regions at t = 0)",
    {"time_sampler.add_zeros": True},
  ),
  "board_add_zeros": ("board_beta + add_zeros", {**_BOARD, "time_sampler.add_zeros": True}),
  "board_c5": ("board_beta, c = 5", {**_BOARD, "time_sampler.concentration": 5.0}),
  "board_novlb": ("board_beta, VLB weight 0", _NOVLB),
  "board_sigma0.1": (
    "board_beta, VLB 0, sigma-NLL weight 0.1",
    {**_NOVLB, "loss.sigma_weight": 0.1},
  ),
  "board_ema0.998": ("board_beta, VLB 0, EMA 0.998", {**_NOVLB, "optim.ema_decay": 0.998}),
  "board_const_lr": ("board_beta, VLB 0, constant lr", {**_NOVLB, "optim.decay_steps": 0}),
  "board_lr1e-3": ("board_beta, VLB 0, lr 1e-3", {**_NOVLB, "optim.learning_rate": 1e-3}),
  "board_wd0.01": (
    "board_beta, VLB 0, weight decay 0.01, b1 0.9",
    {**_NOVLB, "optim.weight_decay": 0.01, "optim.b1": 0.9},
  ),
  "reduce_unknown": (
    "loss averaged per board over its unknown cells (boards weigh equally)",
    {"loss.reduction": "unknown"},
  ),
  "feasibility_unknown": (
    "the feasibility row + loss averaged per board over its unknown cells",
    {**_FEASIBILITY, "loss.reduction": "unknown"},
  ),
  "pool20k": (
    "a pool of 20,000 training boards (5,000 shipped), still re-drawn through symmetries",
    {"data.pool_size": 20000},
  ),
  # width / depth at about the baseline's CPU time: steps scaled by the measured step rate
  # (batch 64, 2 idle cores: 64x4 2.7-3.2 steps/s, 128x4 1.4, 96x4 2.0, 64x6 1.9)
  "wide128": (
    "transformer width 128 (4 heads), 1,200 steps: about the baseline's CPU time",
    {"model.transformer.dim": 128, "train.steps": 1200},
  ),
  "deep6": (
    "transformer depth 6, 1,650 steps: about the baseline's CPU time",
    {"model.transformer.depth": 6, "train.steps": 1650},
  ),
  # training length, and single changes of the optimiser on the shipped recipe (mean_beta)
  "steps1200": ("training length: half the baseline's 2,400 steps", {"train.steps": 1200}),
  "steps4800": ("training length: twice the baseline's 2,400 steps", {"train.steps": 4800}),
  "shipped_cpu": (
    "training length: the shipped sudoku_symbolic_cpu weights (the cpu config's "
    "8,000 steps, 500 warm-up), scored as they are",
    {"eval.pretrained": "sudoku_symbolic_cpu", "train.steps": 8000},
  ),
  "shipped_long": (
    "training length: the sudoku_symbolic_long weights (the cpu_long config's "
    "18,000 steps, 500 warm-up), scored as they are",
    {"eval.pretrained": "sudoku_symbolic_long", "train.steps": 18000},
  ),
  "ema0.99": ("EMA decay 0.99 (0.995 shipped): less lag at 2,400 steps", {"optim.ema_decay": 0.99}),
  "lr1e-3": ("learning rate 1e-3 (2e-3 shipped)", {"optim.learning_rate": 1e-3}),
  "const_lr": (
    "constant learning rate after the warm-up (cosine shipped)",
    {"optim.decay_steps": 0},
  ),
  "sigma0.1": ("sigma-NLL weight 0.1 (0.01 shipped)", {"loss.sigma_weight": 0.1}),
  # the training seed alone (init, batches): how far apart two runs of one recipe land
  "seed1": ("baseline, training seed 1 (init and batches; scored with the same key)", {"seed": 1}),
  "seed2": ("baseline, training seed 2 (init and batches; scored with the same key)", {"seed": 2}),
  "feasibility": (
    "all of the feasibility run's differences at once: board_beta, VLB 0, EMA "
    "0.998, weight decay 0.01, b1 0.9, constant lr",
    _FEASIBILITY,
  ),
}

FLAGS = {}


def define_flags():
  """The command line's flags, defined when run as a script (not at import, so that tests can
  import this module beside others that define flags)."""
  FLAGS.update(
    rows=flags.DEFINE_list("rows", list(ROWS), "rows to run, in order"),
    out=flags.DEFINE_string("out", "runs/recipe", "study directory"),
    steps=flags.DEFINE_integer("steps", 2400, "training steps of a row that does not set them"),
    puzzles=flags.DEFINE_integer("puzzles", 100, "held-out puzzles per split"),
    hard_rounds=flags.DEFINE_integer("hard_rounds", 30, "uniform IPR rounds on hard puzzles"),
    medium_rounds=flags.DEFINE_integer("medium_rounds", 15, "uniform IPR rounds on medium puzzles"),
    variance=flags.DEFINE_enum(
      "variance",
      sudoku_symbolic.get_config("cpu").refine.initial.variance,
      list(flow.VARIANCE_MODES),
      "reverse std used to score the rows",
    ),
    table=flags.DEFINE_bool(
      "table", False, "print the markdown table of OUT/results.jsonl and stop"
    ),
  )


SHOWN = (0, 5, 10, 15, 20, 30)
SCORE_SEED = 0  # every row is scored with the same sampling key: rows differ only by training


def row_config(name: str, steps: int):
  if name not in ROWS:
    raise ValueError(f"unknown row {name!r}; rows: {', '.join(ROWS)}")
  config = sudoku_symbolic.get_config("cpu")
  config.train.update(steps=steps, checkpoint_every=600)
  cosine = bool(config.optim.decay_steps)  # the row may set a constant lr (decay_steps 0)
  for key, value in ROWS[name][1].items():
    *path, field = key.split(".")
    try:
      node = functools.reduce(operator.getitem, path, config)
    except KeyError:
      node = None
    if not isinstance(node, ml_collections.ConfigDict) or field not in node:
      raise ValueError(f"row {name}: {key} is not a key of the cpu config")
    node[field] = value
  # warm-up, cosine and validation follow the row's length (its own, if it sets one)
  t = config.train
  t.eval_every = t.steps
  config.optim.warmup_steps = min(200, t.steps // 4)
  if cosine and config.optim.decay_steps:
    config.optim.decay_steps = t.steps
  return config


def cpu_minutes(workdir: str) -> float:
  """Training time from the log's steps/s (sums the pieces of a resumed run)."""
  rows = [json.loads(l) for l in open(os.path.join(workdir, "metrics.jsonl"))]
  done, seconds = 0, 0.0
  for r in rows:
    seconds += (r["step"] - done) / r["steps_per_s"]
    done = r["step"]
  return seconds / 60.0


def score(config, workdir: str, split: str, rounds: int, num: int) -> dict:
  run = translate.translate(config)
  apply, params, source = evaluate.load_params(run, workdir)
  items = run.task.test_items(split, num)
  cfg = dataclasses.replace(run.refine, selector="uniform", rounds=rounds)
  t0 = time.time()
  metrics, nfe, _ = evaluate.run_refine(
    apply, params, items, cfg, run.task, jax.random.key(SCORE_SEED), num, desc=f"{split} IPR"
  )
  valid = metrics["valid"].mean(axis=1)
  return {
    "valid": {r: round(float(valid[r]), 4) for r in SHOWN if r <= rounds},
    "nfe": int(np.sum(nfe)),
    "seconds": round(time.time() - t0, 1),
    "checkpoint": source,
  }


def run_row(name: str, out: str, variance: str) -> dict:
  steps, puzzles = FLAGS["steps"].value, FLAGS["puzzles"].value
  config = row_config(name, steps)
  workdir = os.path.join(out, name)
  command = shlex.join(
    [
      "python",
      "-m",
      "experiments.studies.sudoku_recipe",
      f"--rows={name}",
      f"--out={out}",
      f"--steps={steps}",
      f"--puzzles={puzzles}",
      f"--variance={variance}",
    ]
  )
  row_run = translate.translate(config)
  shipped, steps = row_run.plan.pretrained, row_run.loop.steps
  if shipped:  # shipped weights: nothing to train, their manifest's wall time
    manifest = pretrained.manifest(shipped)
    if manifest["steps"] != steps:
      raise ValueError(
        f"row {name}: {shipped} was trained for {manifest['steps']} steps, the row says {steps}"
      )
    minutes = manifest["train_wall_s"] / 60.0
  else:
    train.train(config, workdir, command=command)  # resumes / returns at once when trained
    minutes = cpu_minutes(workdir)
  for sampler in (config.refine.initial, config.refine.ipr):  # scoring only: training never
    sampler.variance = variance  # samples with it
  res = {
    "row": name,
    "change": ROWS[name][0],
    "overrides": ROWS[name][1],
    "variance": variance,
    "steps": steps,
    "cpu_minutes": round(minutes, 1),
    "puzzles": puzzles,
    "command": command,
    "commit": common.git_commit(),
    "hard": score(config, workdir, "hard", FLAGS["hard_rounds"].value, puzzles),
    "medium": score(config, workdir, "medium", FLAGS["medium_rounds"].value, puzzles),
  }
  return res


def variance_of(result: dict) -> str:
  """The reverse std a result line was scored with (lines before the flag: the papers')."""
  return result.get("variance", "learned_range")


def table(path: str) -> str:
  rows = [json.loads(l) for l in open(path)]
  header = ["row", "change", "reverse std", "steps", "CPU min", "hard r0", "hard r15"]
  header += ["hard r30", "medium r0", "medium r15"]

  def cell(d, k):
    return f"{100 * d[k]:.0f}%" if k in d else "-"

  cells = []
  for r in rows:
    h, m = r["hard"]["valid"], r["medium"]["valid"]
    cells.append(
      [r["row"], r["change"], variance_of(r), r["steps"], r["cpu_minutes"]]
      + [cell(h, "0"), cell(h, "15"), cell(h, "30"), cell(m, "0"), cell(m, "15")]
    )
  return tables.render(header, cells)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  path = os.path.join(FLAGS["out"].value, "results.jsonl")
  if FLAGS["table"].value:
    print(table(path))
    return
  for name in FLAGS["rows"].value:
    row_config(name, FLAGS["steps"].value)  # unknown rows and keys fail before any training
  lines = [json.loads(l) for l in open(path)] if os.path.exists(path) else []
  done = {(r["row"], variance_of(r)) for r in lines}
  for name in FLAGS["rows"].value:
    if (name, FLAGS["variance"].value) in done:
      print(f"{name}: already scored with {FLAGS['variance'].value}, skipped")
      continue
    res = run_row(name, FLAGS["out"].value, FLAGS["variance"].value)
    os.makedirs(FLAGS["out"].value, exist_ok=True)
    with open(path, "a") as f:
      f.write(json.dumps(res) + "\n")
    print(json.dumps(res), flush=True)
  print(table(path))


if __name__ == "__main__":
  define_flags()
  app.run(main)
