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
import functools
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from experiments import codec, common, plots, tables, train, translate
from ipr_jax import (
  checkpoints,
  pretrained,
  refine,
  restarts,
  sampling,
  schedules,
  sharding,
  typicality,
)


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


def resolved_doubt(run: translate.Run) -> str:
  """The regions' doubt to sample with, "model" or "typicality": eval.doubt, with "recommended"
  read from eval.pretrained's manifest ("model" without a shipped model)."""
  ev = run.plan
  if ev.doubt != "recommended":
    return ev.doubt
  return (
    pretrained.recommended_doubt(pretrained.manifest(ev.pretrained)) if ev.pretrained else "model"
  )


def with_doubt(config, run: translate.Run, workdir: str, apply, params):
  """(apply, params, doubt) to sample with: the denoiser as loaded, or with eval.doubt
  "typicality" wrapped by `typicality.with_doubt`, over the shipped model's mixture where it
  ships one, else one fitted to the codec's training cells (`codec.mixture`). ValueError for a
  pixel-space config (typicality reads a latent model's clean estimates)."""
  doubt = resolved_doubt(run)
  if doubt == "model":
    return apply, params, doubt
  stage = translate.codec_stage(config)
  if stage is None:
    raise ValueError(
      "eval.doubt='typicality' reads a latent model's clean estimates; this config is in "
      "pixel space (model.codec.latent_dim 0)"
    )
  name = run.plan.pretrained
  if name and "typicality" in pretrained.manifest(name):
    mixture = pretrained.load_mixture(name)
  else:
    mixture = codec.mixture(stage, *codec.load(stage, workdir))
  return (*typicality.wrap(apply, params, mixture), doubt)


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


MAX_SCORED = 49  # rounds `scored_rounds` keeps by default: 0 and 48 more


def scored_rounds(rounds: int, every: int | None = None) -> list[int]:
  """The rounds whose boards are scored: 0, every `every`-th, and the last (`every` by default:
  1 up to MAX_SCORED - 1 rounds, else the smallest k that scores at most MAX_SCORED)."""
  if every is None:
    every = max(1, -(-rounds // (MAX_SCORED - 1)))
  if every < 1:
    raise ValueError(f"score_every must be >= 1, got {every}")
  return sorted(set(range(0, rounds + 1, every)) | {rounds})


@functools.partial(jax.jit, static_argnums=(0, 3))
def _score_rounds(metric_fn, metric_params, history, rounds: tuple):
  return jax.lax.map(
    lambda x: refine.apply_metric(metric_fn, metric_params, x), history[np.asarray(rounds)]
  )


def score_history(metric_fn, metric_params, history, rounds: list[int]):
  """{name: f32[len(rounds), B]}: metric_fn (refine's calling convention) on the boards of the
  given rounds of a refine history f32[rounds+1, B, ...], one compiled lax.map over the rounds
  (the values refine's in-loop metric gives on those rounds); compiled once per metric_fn,
  rounds and shapes."""
  return _score_rounds(metric_fn, metric_params, history, tuple(int(r) for r in rounds))


def run_refine(
  apply,
  params,
  items,
  cfg: refine.RefineConfig,
  task,
  key,
  batch: int,
  desc: str = "refine",
  scored: list[int] | None = None,
):
  """IPR over all items in batches: (metrics {name: f32[rounds+1, N]}, nfe i32[rounds+1] max,
  history of the first batch or None). The task's evaluator weights are refine arguments. Item
  i is refined under fold_in(key, i) whatever the batch size (`refine`'s item_ids). With
  `scored` (a list of rounds, `scored_rounds`), the loop keeps its history instead of scoring
  every round, and metrics and nfe have one entry per scored round: the metric of its boards,
  and the NFE since the previous scored round. Adaptive restarts (cfg.accept_below) run through
  `restarts.solve` with `batch` slots: their NFE is the costliest item's, and metrics gain
  "item_nfe", each item's own (its mean: the policy's cost)."""
  if cfg.accept_below is not None:
    if scored is not None:
      raise ValueError("scoring every k-th round (eval.score_every) needs rounds, not restarts")
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
  if scored is not None and cfg.chains is not None:
    raise ValueError("scoring every k-th round (eval.score_every) needs a single chain")
  run_cfg = cfg if scored is None else dataclasses.replace(cfg, keep_history=True)
  outs, hist = [], None
  for lo, hi in _chunks(len(items.x), batch, desc):
    res = refine.refine(
      apply,
      params,
      key,
      jnp.asarray(items.x[lo:hi]),
      jnp.asarray(items.eligible[lo:hi]),
      run_cfg,
      task.metric_fn if scored is None else None,
      metric_params=task.metric_params,
      item_ids=np.arange(lo, hi),
      devices=common.job_devices(),
    )
    if hist is None and cfg.keep_history:
      hist = sharding.to_host(res.history)  # the strip's: the first batch only
    m = (
      res.metrics
      if scored is None
      else score_history(task.metric_fn, task.metric_params, res.history, scored)
    )
    outs.append(sharding.to_host((m, res.nfe)))  # on every process
  metrics = {k: np.concatenate([o[0][k] for o in outs], axis=1) for k in outs[0][0]}
  nfe = np.max(np.stack([o[1] for o in outs]), axis=0)
  if scored is not None:  # NFE per scored round: since the previous one
    nfe = np.diff(np.cumsum(nfe)[scored], prepend=0)
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


def _round_lines(method: str, headline: str, curve, nfe, rounds) -> str:
  cum = np.cumsum(nfe)
  return "\n".join(
    f"  {method} round {r:>2}: {headline} {y:.3f}  ({int(n)} NFE)"
    for r, y, n in zip(rounds, curve, cum)
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
  """(metrics {method: {name: [per scored round]}}, nfe {method: [per scored round]}, scored
  {method: [rounds]}, strip path or None). Every method of a split refines or samples under the
  same key (the run's evaluation stream folded with the split's position), so they differ by
  their settings only. eval.score_every k > 1 scores every k-th round and the last."""
  ev, task = run.plan, run.task
  key = jax.random.fold_in(run.key("evaluation"), list(ev.splits).index(split))
  items = task.test_items(split, ev.num_samples)
  metrics, nfes, scored, strip = {}, {}, {}, None

  def refine_method(method: str, cfg: refine.RefineConfig):
    """Refine every item with `cfg`; record and print its curve; the first batch's history."""
    every_round = ev.score_every == 1 or cfg.rounds == 0  # restarts have no rounds to pick
    which = None if every_round else scored_rounds(cfg.rounds, ev.score_every)
    m, nfe, hist = run_refine(
      apply, params, items, cfg, task, key, ev.batch_size, desc=f"{split} {method}", scored=which
    )
    metrics[method] = {k: v.mean(axis=1).tolist() for k, v in m.items()}
    nfes[method] = nfe.tolist()
    scored[method] = list(range(len(nfe))) if which is None else which
    print(
      f"[{split}] {method}:\n"
      + _round_lines(method, task.headline, metrics[method][task.headline], nfe, scored[method])
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
  scored[method] = [0]
  print(
    f"[{split}] {method}: {task.headline} {metrics[method][task.headline][0]:.3f}  "
    f"({int(nfe[0])} NFE)"
  )
  return metrics, nfes, scored, strip


def run(config, workdir: str, mode: str, params_source=None, command: str | None = None) -> dict:
  """Run sample / refine / evaluate and write DIR/results.json + plots; returns the results."""
  t0 = time.time()
  translate.check(config)
  run_ = translate.translate(config, codec=codec.load(translate.codec_stage(config), workdir))
  if params_source is None:
    apply, params, source = load_params(run_, workdir)
  else:
    apply, params, source = params_source
  apply, params, doubt = with_doubt(config, run_, workdir, apply, params)
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
  results["doubt"] = doubt  # the regions' doubt the sampler and selectors ran with
  if mode == "evaluate":
    truth = run_.task.test_items(ev.splits[0], ev.num_samples)
    results["ground_truth"] = {
      k: float(np.mean(v)) for k, v in run_.task.metrics(jnp.asarray(truth.x)).items()
    }
  strips = []
  for split in ev.splits:
    metrics, nfes, scored, strip = evaluate_split(
      run_, apply, params, split, rounds[split], workdir
    )
    results["metrics"][split], results["nfe"][split] = metrics, nfes
    results["scored"][split] = scored
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
  """Plain-text table: metric per scored round for every split and method."""
  blocks = []
  for split, methods in results["metrics"].items():
    at = {m: plots.scored_rounds(results, split, m) for m in methods}
    columns = sorted(set().union(*at.values()))
    header = [plots.metric_label(metric)] + [f"r{r}" for r in columns] + ["NFE"]
    cells = []
    for method, curves in methods.items():
      by_round = dict(zip(at[method], curves[metric]))
      row = [f"{by_round[r]:.3f}" if r in by_round else "" for r in columns]
      nfe = int(np.sum(results["nfe"][split][method]))
      cells.append([plots.method_label(method)] + row + [nfe])
    blocks.append(
      f"[{split}] {results['num_samples']} held-out items\n"
      + tables.render(header, cells, style="text")
    )
  return "\n".join(blocks)
