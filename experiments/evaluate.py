"""sample / refine / evaluate modes: IPR budget curves with baselines in the same run.

Per split: round 0 (the SRM sample), IPR with each configured selector (uniform = the paper,
uncertainty = ours), with `eval.settings_from=NAME` also shipped model NAME's recommended
settings (method `recommended`, its rounds scaled by the split's budget: medium's 15 of 30
halves them), and a compute-matched baseline: the sequential sampler with more steps per
region so that its NFE is the one closest to the IPR run's total. Writes DIR/results.json (the
schema of `common.results_record`), the plots and a strip per split. Shows a progress bar per
split and method and a per-round line of the headline metric.
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from experiments import codec, common, plots, tables, train, translate
from ipr_jax import checkpoints, pretrained, refine, restarts, sampling, schedules, sharding


IMPORTED = (
  "imported"  # DIR/imported: params.npz + manifest.json of experiments.tools.import_checkpoint
)


def load_params(run: translate.Run, workdir: str):
  """The params to sample with: the shipped model `eval.pretrained` where it is set; else the
  EMA params of DIR/best (the best validation step) or the latest checkpoint (with
  `eval.checkpoint = "last"`, always the latest checkpoint); a run with no training checkpoint
  uses DIR/imported (weights written by experiments.tools.import_checkpoint) where it exists."""
  name = run.plan.pretrained
  if name:
    return _load_asset(name, pretrained.ASSETS, run, f"shipped model {name!r}")
  for sub in ("best", "checkpoints") if run.plan.checkpoint == "best" else ("checkpoints",):
    path = os.path.join(workdir, sub)
    if os.path.isdir(path) and checkpoints.manager(path, create=False).latest_step() is not None:
      apply, _, target = train.build_state(run)
      mgr = checkpoints.manager(path, create=False)
      state, _ = checkpoints.restore(mgr, target)
      return apply, state.ema_params, f"{path}/{mgr.latest_step()}"
  if os.path.exists(os.path.join(workdir, IMPORTED, "manifest.json")):
    return _load_asset(IMPORTED, workdir, run, f"{workdir}/{IMPORTED}")
  raise checkpoints.CheckpointError(
    f"no checkpoint in {workdir}/best or {workdir}/checkpoints "
    f"(nor {workdir}/{IMPORTED}); run --mode train first, "
    "experiments.tools.import_checkpoint, or set eval.pretrained"
  )


def _load_asset(name: str, root: str, run: translate.Run, where: str):
  """(apply, params, source) of the `pretrained`-format folder root/name, whose model must be
  this config's denoiser (else `translate.check_same_model`'s ValueError naming what differs)."""
  dtype = run.model.dtype  # the compute dtype is the run's choice, not the weights'
  apply, params, manifest = pretrained.load(name, root=root, dtype=dtype)
  translate.check_same_model(pretrained.model_config(manifest["model"]), run.model, where)
  return apply, params, f"{where} (from {manifest.get('source') or manifest.get('checkpoint')})"


def _chunks(n: int, batch: int, desc: str):
  """[(lo, hi)] batches of [0, n) behind a progress bar named `desc`."""
  return tqdm(
    [(lo, min(lo + batch, n)) for lo in range(0, n, batch)], desc=desc, leave=False, unit="batch"
  )


def run_refine(
  apply, params, items, cfg: refine.RefineConfig, task, key, batch: int, desc: str = "refine"
):
  """IPR over all items in batches: (metrics {name: f32[rounds+1, N]}, nfe i32[rounds+1] max,
  history of the first batch or None). The task's evaluator weights are refine arguments. Item
  i is refined under fold_in(key, i) whatever the batch size (`refine`'s item_ids). Adaptive
  restarts (cfg.accept_below) run through `restarts.solve` with `batch` slots: their NFE is the
  costliest item's, and metrics gain "item_nfe", each item's own (its mean: the policy's cost)."""
  if cfg.accept_below is not None:
    res = restarts.solve(
      apply,
      params,
      key,
      items.x,
      items.eligible,
      cfg,
      task.metric_fn,
      metric_params=task.metric_params,
      item_ids=np.arange(len(items.x)),
      slots=batch,
      progress=True,
    )
    metrics = {k: np.asarray(v) for k, v in res.metrics.items()}
    metrics["item_nfe"] = np.cumsum(np.asarray(res.item_nfe), axis=0)
    return metrics, np.asarray(res.nfe), None if res.history is None else res.history[:, :batch]
  outs = [
    refine.refine(
      apply,
      params,
      key,
      jnp.asarray(items.x[lo:hi]),
      jnp.asarray(items.eligible[lo:hi]),
      cfg,
      task.metric_fn,
      metric_params=task.metric_params,
      item_ids=np.arange(lo, hi),
      devices=common.job_devices(),
    )
    for lo, hi in _chunks(len(items.x), batch, desc)
  ]
  hist = sharding.to_host(outs[0].history)  # the strip's: the first batch only
  outs = [sharding.to_host((o.metrics, o.nfe)) for o in outs]  # on every process
  metrics = {k: np.concatenate([o[0][k] for o in outs], axis=1) for k in outs[0][0]}
  nfe = np.max(np.stack([o[1] for o in outs]), axis=0)
  return metrics, nfe, hist


def run_matched(
  apply,
  params,
  items,
  sampler_cfg: sampling.SamplerConfig,
  task,
  key,
  batch: int,
  desc: str = "matched",
):
  """One sequential pass over all items in batches: (metrics {name: f32[1, N]}, nfe i32[1]).
  `key` splits into the passes' key and the initial noise's; item i's draws come from each
  folded with i (`sampling.sample`'s item_ids, `sampling.initial_noise`), whatever the batch."""
  pass_key, noise_key = jax.random.split(key)
  outs = [
    sampling.sample(
      apply,
      params,
      pass_key,
      sampling.initial_noise(noise_key, np.arange(lo, hi), items.x.shape[1:]),
      ~jnp.asarray(items.eligible[lo:hi]),
      jnp.asarray(items.x[lo:hi]),
      sampler_cfg,
      item_ids=np.arange(lo, hi),
      devices=common.job_devices(),
    )
    for lo, hi in _chunks(len(items.x), batch, desc)
  ]
  outs = [sharding.to_host((o.x, o.nfe)) for o in outs]
  per_batch = [task.metrics(jnp.asarray(x)) for x, _ in outs]
  metrics = {k: np.concatenate([np.asarray(m[k]) for m in per_batch])[None] for k in per_batch[0]}
  return metrics, np.array([max(int(nfe) for _, nfe in outs)])


def matched_steps(sampler: sampling.SamplerConfig, ipr_nfe: int, unknown_max: int) -> int:
  """Steps per region of the compute-matched single pass: its NFE (the plan for the batch's
  largest unknown count, with the sampler's overlap) is the one closest to IPR's total."""
  blocks = int(sampling.num_blocks(max(unknown_max, 1), sampler))
  return schedules.matched_steps_per_patch(ipr_nfe, blocks, sampler.overlap)


def shown_rounds(rounds: int) -> list:
  """The rounds a strip shows: 0, 1, the middle and the last."""
  return sorted({0, 1, rounds // 2, rounds} & set(range(rounds + 1)))


def _round_lines(method: str, headline: str, curve, nfe) -> str:
  cum = np.cumsum(nfe)
  return "\n".join(
    f"  {method} round {r:>2}: {headline} {y:.3f}  ({int(cum[r])} NFE)" for r, y in enumerate(curve)
  )


def recommended_for(run: translate.Run, split: str) -> refine.RefineConfig:
  """Shipped model eval.settings_from's recommended refine settings for `split` (its own, where
  the manifest has some for that split): their rounds times the split's share of the config's
  round budget (eval.rounds[split] / refine.rounds); settings of no rounds (restarts) kept."""
  rec = pretrained.recommended(pretrained.manifest(run.plan.settings_from), split)
  if rec.rounds == 0:
    return rec
  share = run.split_rounds(split) / max(run.refine.rounds, 1)
  return dataclasses.replace(rec, rounds=max(1, round(rec.rounds * share)))


def evaluate_split(run: translate.Run, apply, params, split: str, rounds: int, workdir: str):
  """(metrics {method: {name: [per round]}}, nfe {method: [per round]}, strip path or None).
  Every method of a split refines or samples under the same key (the run's evaluation stream
  folded with the split's position), so they differ by their settings only."""
  ev, task = run.plan, run.task
  key = jax.random.fold_in(run.key("evaluation"), list(ev.splits).index(split))
  items = task.test_items(split, ev.num_samples)
  metrics, nfes, strip = {}, {}, None

  def refine_method(method: str, cfg: refine.RefineConfig):
    """Refine every item with `cfg`; record and print its curve; the first batch's history."""
    m, nfe, hist = run_refine(
      apply, params, items, cfg, task, key, ev.batch_size, desc=f"{split} {method}"
    )
    metrics[method] = {k: v.mean(axis=1).tolist() for k, v in m.items()}
    nfes[method] = nfe.tolist()
    print(
      f"[{split}] {method}:\n"
      + _round_lines(method, task.headline, metrics[method][task.headline], nfe)
    )
    return hist

  chosen = run.selectors if rounds > 0 else run.selectors[:1]  # sample mode: round 0 once
  for i, selector in enumerate(chosen):
    cfg = dataclasses.replace(run.refine, selector=selector, rounds=rounds, keep_history=(i == 0))
    method = f"ipr_{selector}"
    hist = refine_method(method, cfg)
    if hist is not None and common.is_writer():  # one process writes the files
      s = min(ev.strip_samples, hist.shape[1])
      labels = {k: v[:s] for k, v in items.labels.items()}
      strip = task.strip(
        hist[:, :s], labels, os.path.join(workdir, f"strip_{split}.png"), shown_rounds(rounds)
      )
  if ev.settings_from and rounds > 0:
    refine_method("recommended", recommended_for(run, split))
  total = int(np.sum(nfes[f"ipr_{chosen[0]}"]))
  per_region = matched_steps(run.sampler, total, int(np.max(items.eligible.sum(axis=1))))
  matched_cfg = dataclasses.replace(run.sampler, steps_per_patch=per_region)
  method = f"compute_matched_{per_region}_steps"
  m, nfe = run_matched(
    apply, params, items, matched_cfg, task, key, ev.batch_size, desc=f"{split} {method}"
  )
  metrics[method] = {k: v.mean(axis=1).tolist() for k, v in m.items()}
  nfes[method] = nfe.tolist()
  print(
    f"[{split}] {method}: {task.headline} {metrics[method][task.headline][0]:.3f}  "
    f"({int(nfe[0])} NFE)"
  )
  return metrics, nfes, strip


def run(config, workdir: str, mode: str, params_source=None, command: str | None = None) -> dict:
  """Run sample / refine / evaluate and write DIR/results.json + plots; returns the results."""
  t0 = time.time()
  translate.check(config)
  run_ = translate.translate(config, codec=codec.load(translate.codec_stage(config), workdir))
  if params_source is None:
    apply, params, source = load_params(run_, workdir)
  else:
    apply, params, source = params_source
  os.makedirs(workdir, exist_ok=True)
  ev = run_.plan
  rounds = {s: 0 if mode == "sample" else run_.split_rounds(s) for s in ev.splits}
  results = common.results_record(
    run_,
    splits=ev.splits,
    num_samples=ev.num_samples,
    rounds=rounds,
    headline=run_.task.headline,
    checkpoint=source,
    command=command or f"--mode {mode}",
  )
  if mode == "evaluate":
    truth = run_.task.test_items(ev.splits[0], ev.num_samples)
    results["ground_truth"] = {
      k: float(np.mean(v)) for k, v in run_.task.metrics(jnp.asarray(truth.x)).items()
    }
  strips = []
  for split in ev.splits:
    metrics, nfes, strip = evaluate_split(run_, apply, params, split, rounds[split], workdir)
    results["metrics"][split], results["nfe"][split] = metrics, nfes
    strips += [strip] if strip else []
  results["seconds"] = time.time() - t0
  results["processes"] = jax.process_count()
  if common.is_writer():  # in a job of several processes, process 0 writes the files
    common.write_json(os.path.join(workdir, "results.json"), results)
    results["plots"] = plots.budget_curves(results, run_.task.headline, workdir) + strips
  else:
    results["plots"] = []
  return results


def table(results: dict, metric: str) -> str:
  """Plain-text table: metric per round for every split and method."""
  blocks = []
  for split, methods in results["metrics"].items():
    rounds = max(len(c[metric]) for c in methods.values())
    header = [plots.metric_label(metric)] + [f"r{r}" for r in range(rounds)] + ["NFE"]
    cells = [
      [plots.method_label(method)]
      + [f"{y:.3f}" for y in curves[metric]]
      + [""] * (rounds - len(curves[metric]))
      + [int(np.sum(results["nfe"][split][method]))]
      for method, curves in methods.items()
    ]
    blocks.append(
      f"[{split}] {results['num_samples']} held-out items\n"
      + tables.render(header, cells, style="text")
    )
  return "\n".join(blocks)
