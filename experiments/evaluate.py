"""sample / refine / evaluate modes: IPR budget curves with baselines in the same run.

Per split: round 0 (the SRM sample), IPR with each configured selector (uniform = the paper,
uncertainty = ours), and a compute-matched baseline: the sequential sampler with more steps per
region so that its NFE does not exceed the IPR run's total. Writes DIR/results.json
(design section 3, with `metrics` and `nfe` nested as split -> method), the plots and a strip.
"""
from __future__ import annotations

import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments import common, plots, tasks, train
from ipr_jax import checkpoints, denoisers, pretrained, refine, sampling, schedules, sharding


IMPORTED = "imported"  # DIR/imported: params.npz + manifest.json of experiments.import_checkpoint


def load_params(config, workdir: str, task):
  """EMA params of DIR/best (the best validation step) or else the latest checkpoint; with
  `eval.checkpoint = "last"`, always the latest checkpoint. A run with no training checkpoint
  uses DIR/imported (weights written by experiments.import_checkpoint) where it exists."""
  which = config.eval.get("checkpoint", "best")
  if which not in ("best", "last"):
    raise ValueError(f"eval.checkpoint must be best or last, got {which!r}")
  for sub in ("best", "checkpoints") if which == "best" else ("checkpoints",):
    path = os.path.join(workdir, sub)
    if os.path.isdir(path) and checkpoints.manager(path, create=False).latest_step() is not None:
      apply, _, target = train.build_state(config, task)
      mgr = checkpoints.manager(path, create=False)
      state, _ = checkpoints.restore(mgr, target)
      return apply, state.ema_params, f"{path}/{mgr.latest_step()}"
  if os.path.exists(os.path.join(workdir, IMPORTED, "manifest.json")):
    return _load_imported(workdir, task)
  raise checkpoints.CheckpointError(f"no checkpoint in {workdir}/best or {workdir}/checkpoints "
                                    f"(nor {workdir}/{IMPORTED}); run --mode train first, or "
                                    "experiments.import_checkpoint")


def _load_imported(workdir: str, task):
  """(apply, params, source) of DIR/imported, whose model must be this config's denoiser."""
  dtype = task.model_config.dtype  # the compute dtype is the run's choice, not the weights'
  apply, params, manifest = pretrained.load(IMPORTED, root=workdir, dtype=dtype)
  stored = dataclasses.replace(pretrained.model_config(manifest["model"]), dtype=dtype)
  if stored != task.model_config:
    raise ValueError(f"{workdir}/{IMPORTED} holds a {manifest['model']} denoiser, but the config "
                     f"asks for {denoisers.to_dict(task.model_config)}")
  return apply, params, f"{workdir}/{IMPORTED} (from {manifest.get('source')})"


def _batched(fn, n: int, batch: int):
  """Run fn(lo, hi) over [0, n) in chunks of `batch`; returns the list of results."""
  outs = [fn(lo, min(lo + batch, n)) for lo in range(0, n, batch)]
  return outs


def run_refine(apply, params, items, cfg, metric_fn, key, batch: int):
  """IPR over all items in batches: (metrics {name: f32[rounds+1, N]}, nfe i32[rounds+1] max,
  history of the first batch or None)."""
  chunks = _batched(lambda lo, hi: refine.refine(
      apply, params, jax.random.fold_in(key, lo), jnp.asarray(items.x[lo:hi]),
      jnp.asarray(items.eligible[lo:hi]), cfg, metric_fn, devices=sharding.devices_for(hi - lo)),
      len(items.x), batch)
  metrics = {k: np.concatenate([np.asarray(c.metrics[k]) for c in chunks], axis=1)
             for k in chunks[0].metrics}
  nfe = np.max(np.stack([np.asarray(c.nfe) for c in chunks]), axis=0)
  hist = None if chunks[0].history is None else np.asarray(chunks[0].history)
  return metrics, nfe, hist


def run_matched(apply, params, items, sampler_cfg, metric_fn, key, batch: int):
  chunks = _batched(lambda lo, hi: sampling.sample(
      apply, params, jax.random.fold_in(key, lo),
      jax.random.normal(jax.random.fold_in(key, 10_000 + lo), items.x[lo:hi].shape),
      ~jnp.asarray(items.eligible[lo:hi]), jnp.asarray(items.x[lo:hi]), sampler_cfg,
      devices=sharding.devices_for(hi - lo)),
      len(items.x), batch)
  metrics = {k: np.concatenate([np.asarray(metric_fn(c.x)[k]) for c in chunks])[None]
             for k in metric_fn(chunks[0].x)}
  return metrics, np.array([max(int(c.nfe) for c in chunks)])


def matched_steps(config, ipr_nfe: int, unknown_max: int) -> int:
  """Steps per region of the compute-matched single pass: its NFE (the plan for the batch's
  largest unknown count, with the config's overlap) is the one closest to IPR's total."""
  cfg = common.sampler_config(config)
  blocks = 1 if cfg.order == "parallel" else schedules.ceil_div(max(unknown_max, 1), cfg.top_k)
  return schedules.matched_steps_per_patch(ipr_nfe, blocks, cfg.overlap)


def evaluate_split(config, apply, params, task, split: str, rounds: int, workdir: str):
  ev, key = config.eval, jax.random.key(config.seed)
  items = task.test_items(split, ev.num_samples)
  metrics, nfes, strips = {}, {}, {}
  for selector in config.refine.selectors:
    cfg = common.refine_config(config, selector, rounds, keep_history=(selector == "uniform"))
    m, nfe, hist = run_refine(apply, params, items, cfg, task.metric_fn, key, ev.batch_size)
    metrics[f"ipr_{selector}"] = {k: v.mean(axis=1).tolist() for k, v in m.items()}
    nfes[f"ipr_{selector}"] = nfe.tolist()
    if hist is not None:
      s = min(ev.strip_samples, hist.shape[1])
      shown = sorted(set([0, 1, rounds // 2, rounds]) & set(range(rounds + 1)))
      path = os.path.join(workdir, f"strip_{split}.png")
      if task.name == "sudoku_symbolic":
        strips[selector] = plots.sudoku_strip(hist[:, :s], items.labels["givens"][:s], path, shown)
      elif task.read_digits is not None:  # image Sudoku: the classifier's reading marks bad cells
        strips[selector] = plots.sudoku_strip(hist[:, :s], items.labels["givens"][:s], path, shown,
                                              digits=np.asarray(task.read_digits(hist[:, :s])))
      else:
        strips[selector] = plots.image_strip(hist[:, :s], path, shown)
  total = int(np.sum(nfes[f"ipr_{config.refine.selectors[0]}"]))
  per_region = matched_steps(config, total, int(np.max(items.eligible.sum(axis=1))))
  matched_cfg = common.sampler_config(config, steps_per_patch=per_region)
  m, nfe = run_matched(apply, params, items, matched_cfg, task.metric_fn, key, ev.batch_size)
  metrics[f"compute_matched_{per_region}_steps"] = {k: v.mean(axis=1).tolist() for k, v in m.items()}
  nfes[f"compute_matched_{per_region}_steps"] = nfe.tolist()
  return metrics, nfes, strips


def run(config, workdir: str, mode: str, params_source=None) -> dict:
  """Run sample / refine / evaluate and write DIR/results.json + plots; returns the results."""
  t0 = time.time()
  task = tasks.make_task(config)
  if params_source is None:
    apply, params, source = load_params(config, workdir, task)
  else:
    apply, params, source = params_source
  os.makedirs(workdir, exist_ok=True)
  rounds = 0 if mode == "sample" else config.refine.rounds
  results = {"benchmark": config.benchmark, "variant": config.variant,
             "split": list(config.eval.splits), "num_samples": config.eval.num_samples,
             "seed": config.seed, "rounds": list(range(rounds + 1)), "nfe": {}, "metrics": {},
             "config": config.to_dict(), "checkpoint": source, "commit": common.git_commit(),
             "device": common.device_name(), "command": f"--mode {mode}"}
  if mode == "evaluate":
    truth = task.test_items(config.eval.splits[0], config.eval.num_samples)
    results["ground_truth"] = {k: float(np.mean(v)) for k, v in
                               task.metric_fn(jnp.asarray(truth.x)).items()}
  for split in config.eval.splits:
    metrics, nfes, _ = evaluate_split(config, apply, params, task, split, rounds, workdir)
    results["metrics"][split], results["nfe"][split] = metrics, nfes
  results["seconds"] = time.time() - t0
  common.write_json(os.path.join(workdir, "results.json"), results)
  results["plots"] = plots.budget_curves(results, task.headline, workdir)
  return results


def table(results: dict, metric: str) -> str:
  """Plain-text table: metric per round for every split and method."""
  lines = []
  for split, methods in results["metrics"].items():
    lines.append(f"[{split}] {metric} per round ({results['num_samples']} puzzles)")
    for method, curves in methods.items():
      ys = curves[metric]
      total = int(np.sum(results["nfe"][split][method]))
      lines.append(f"  {method:<28} " + " ".join(f"{y:5.3f}" for y in ys) + f"   ({total} NFE)")
  return "\n".join(lines)
