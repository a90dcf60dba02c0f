"""Run bookkeeping shared by the experiment modes: commit, device, JSON files, the results schema."""

from __future__ import annotations

import json
import os
import subprocess
import time

import jax
from absl import flags


def wall_s(fn) -> float:
  """Seconds that fn() takes until its (jax) result is ready."""
  t0 = time.perf_counter()
  jax.block_until_ready(fn())
  return time.perf_counter() - t0


def git_commit() -> str:
  """HEAD (with -dirty for uncommitted changes); IPR_JAX_COMMIT where the tree has no .git."""
  try:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(
      ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
    )
    dirty = subprocess.run(
      ["git", "status", "--porcelain", "--untracked-files=no"],
      cwd=root,
      capture_output=True,
      text=True,
      timeout=10,
    ).stdout.strip()
    if out.returncode == 0:
      return out.stdout.strip() + ("-dirty" if dirty else "")
  except (OSError, subprocess.SubprocessError):
    pass
  return os.environ.get("IPR_JAX_COMMIT", "unknown")


def job_devices():
  """The devices a mode splits its batches over: every process's in a job of several (launched
  with --num_processes, `experiments.main`), else None (the local devices)."""
  return jax.devices() if jax.process_count() > 1 else None


def is_writer() -> bool:
  """Whether this process writes the run's files (process 0 of a job; the only one otherwise)."""
  return jax.process_index() == 0


def device_name() -> str:
  d = jax.devices()[0]
  return f"{d.platform}:{getattr(d, 'device_kind', '')} x{jax.device_count()}"


def write_json(path: str, obj) -> None:
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with open(path + ".tmp", "w") as f:
    json.dump(obj, f, indent=1)
  os.replace(path + ".tmp", path)


def results_record(
  run,
  *,
  splits,
  num_samples: int,
  rounds,
  headline: str,
  checkpoint: str,
  command: str,
  variant: str | None = None,
) -> dict:
  """The one results.json schema (CLI modes and quickstart) of `run` (a translate.Run):
  `num_samples` items per split,
  `split_rounds[split]` IPR rounds (`rounds` an int for all splits, or a dict per split),
  `rounds` = 0..the largest split's rounds, `metrics[split][method][name]` and
  `nfe[split][method]` per scored round (one entry for a single pass; nfe: spent since the
  previous scored round), `scored[split][method]` the rounds those entries stand for (every
  round, or every k-th and the last: eval.score_every, the quickstart; files written before
  this key: 0..n, or `rounds` in a quickstart's), plus config, seed, checkpoint, commit, device
  and the command that made it."""
  per_split = {s: int(rounds[s] if isinstance(rounds, dict) else rounds) for s in splits}
  return {
    "benchmark": run.benchmark,
    "variant": variant or run.variant,
    "split": list(splits),
    "num_samples": int(num_samples),
    "seed": run.seed,
    "rounds": list(range(max(per_split.values(), default=0) + 1)),
    "split_rounds": per_split,
    "headline": headline,
    "nfe": {},
    "metrics": {},
    "scored": {},
    "config": run.record,
    "checkpoint": checkpoint,
    "commit": git_commit(),
    "device": device_name(),
    "command": command,
  }


def parse_flags(define, argv, prog: str, doc: str = "") -> flags.FlagValues:
  """The scripts' one command-line convention: absl flags, defined by `define(flag_values)` on
  a FlagValues of the script's own, so scripts import side by side and tests call
  `main(argv)`. `--help` prints `doc` and the flags; a bad or unknown flag, or a stray
  argument, is a SystemExit naming it. (Scripts that take an experiment config use
  `config_flags` under `app.run`, as experiments.main does.)"""
  values = flags.FlagValues()
  define(values)
  if any(a in ("-h", "--help", "--helpfull") for a in argv):
    print(f"python -m {prog} [flags]\n\n{doc.strip()}\n\n{values.get_help()}")
    raise SystemExit(0)
  try:
    rest = values([prog, *argv])
  except flags.Error as e:
    raise SystemExit(f"{prog}: {e}") from e
  if len(rest) > 1:
    raise SystemExit(f"{prog}: unexpected argument(s) {rest[1:]}: every input is a --flag")
  return values
