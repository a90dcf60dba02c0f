"""Training mode: resumable, checkpointed, logged, with a validation valid-rate that keeps the
best EMA params in DIR/best (the model that sampling uses).

`train` = `restore` (fresh, warm-started from a shipped model, or resumed state) + `step_loop`
(the jitted steps, logging and checkpoints) calling `Keeper.validate` (validation rate of the EMA
and raw params, best step kept only above the evaluator's chance floor).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from experiments import chance_floor, codec, common, loader, plots, translate
from ipr_jax import (
  checkpoints,
  denoisers,
  pretrained,
  sampling,
  sharding,
  time_sampling,
  training,
)


def build_state(run: translate.Run):
  """(apply, optimizer, fresh TrainState) of the run; the density table is filled later."""
  apply, params = denoisers.build(run.model, run.key("init"))
  optimizer = training.make_optimizer(run.optim)
  return apply, optimizer, training.init_state(params, optimizer)


def validate(apply, params, run: translate.Run, items) -> dict:
  """Mean metrics of the SRM sampler's round-0 samples on `items`, the validation puzzles
  (`task.test_items(..., validation=True)`, never the test set); the same key at every step."""
  pass_key, noise_key = jax.random.split(run.key("validation"))
  res = sampling.sample(
    apply,
    params,
    pass_key,
    sampling.initial_noise(noise_key, np.arange(len(items.x)), items.x.shape[1:]),
    ~items.eligible,
    jnp.asarray(items.x),
    run.sampler,
    devices=common.job_devices(),
  )
  x = jnp.asarray(sharding.to_host(res.x))
  return {k: float(jnp.mean(v)) for k, v in run.task.metrics(x).items()}


def is_better(new: dict, best: dict) -> bool:
  """Headline validation rate first. At a tie (e.g. no valid board yet early in image Sudoku)
  fewer duplicates win where both steps measured them, else the later, longer-trained step."""
  if new["valid"] != best["valid"]:
    return new["valid"] > best["valid"]
  if "duplicate_count" in new and "duplicate_count" in best:
    return new["duplicate_count"] < best["duplicate_count"]
  return True


def restore(run: translate.Run, workdir: str):
  """(apply, optimizer, state, data iterator state or None, checkpoint manager): the latest
  checkpoint of `workdir`, or a fresh state (with the mean_beta density table) when none,
  holding the params of shipped model `train.init_from` where that is set."""
  apply, optimizer, state = build_state(run)
  mgr = checkpoints.manager(os.path.join(workdir, "checkpoints"), run.loop.max_to_keep)
  data_state = None
  if mgr.latest_step() is not None:
    state, _ = checkpoints.restore(mgr, state)
    data_state = checkpoints.data_state(mgr)
    print(f"resumed from step {int(state.step)} in {workdir}")
  else:
    if run.loop.init_from:
      state = warm_start(state, run.loop.init_from, run.loop.init_match)
    if run.time_sampler.kind == "mean_beta":
      pdf = time_sampling.mean_beta_density(
        run.key("density"),
        run.task.grid.num_regions,
        run.time_sampler.sharpness,
        run.loop.density_images,
      )
      state = state.replace(time_pdf=jnp.asarray(pdf))
  return apply, optimizer, state, data_state, mgr


def warm_start(state, name: str, match: str = "all"):
  """A step-0 state whose params and EMA params are shipped model `name`'s (fresh optimiser
  moments, so the lr schedule starts a new cycle). match "all": `translate` has checked that the
  architecture is the same; "shapes": only the params whose name and shape match are copied
  (e.g. a latent model's transformer body from the symbolic model: all but the input and
  output layers), the others keep their initialisation."""
  _, params, _ = pretrained.load(name)
  if match == "shapes":
    ours, theirs = pretrained.flatten(state.params), pretrained.flatten(params)
    same = {k for k, v in ours.items() if k in theirs and theirs[k].shape == v.shape}
    leaves = [theirs[k] if k in same else ours[k] for k in pretrained.leaf_paths(state.params)]
    params = jax.tree.unflatten(jax.tree.structure(state.params), leaves)
    print(
      f"warm start from the shipped model {name!r}: {len(same)} of {len(ours)} params "
      f"copied; kept at initialisation: {sorted(set(ours) - same)}"
    )
  else:
    print(f"warm start from the shipped model {name!r}")
  params = jax.tree.map(jnp.asarray, params)
  return state.replace(params=params, ema_params=jax.tree.map(jnp.copy, params))  # two buffers:
  # the train step donates both


@dataclasses.dataclass
class Keeper:
  """Validation at eval steps; keeps the best EMA step in DIR/best, above the chance floor."""

  apply: object
  run: translate.Run
  workdir: str
  items: object  # the validation TestItems
  floor: float  # the headline score of noise / blank images on those items
  record: dict

  def __post_init__(self):
    self.mgr = checkpoints.manager(os.path.join(self.workdir, "best"), 1)
    self.path = os.path.join(self.workdir, "best.json")
    self.best = json.load(open(self.path)) if os.path.exists(self.path) else {"valid": -1.0}

  def validate(self, state, step: int) -> dict:
    """Validation columns of the log row for `step` (saves DIR/best when the step is best)."""
    headline = self.run.task.headline
    ema = validate(self.apply, state.ema_params, self.run, self.items)
    row = {
      "val_valid": ema[headline],
      "val_valid_raw": validate(self.apply, state.params, self.run, self.items)[headline],
      **{f"val_{k}": v for k, v in ema.items() if k != headline},
      "val_floor": self.floor,
    }
    score = {"valid": row["val_valid"], "step": step}
    if "duplicate_count" in ema:
      score["duplicate_count"] = ema["duplicate_count"]
    if score["valid"] > self.floor and is_better(score, self.best):
      self.best = score
      checkpoints.save(self.mgr, step, state, self.record)  # every process (Orbax)
      if common.is_writer():
        common.write_json(self.path, self.best)
    return row


def step_loop(
  run,
  state,
  data_state,
  step_fn,
  mesh,
  mgr,
  keeper: Keeper,
  workdir: str,
  record: dict,
  stop_at_step: int | None,
):
  """Steps from state.step to train.steps, batches from the grain iterator (`loader`, resumed
  from `data_state`): log every log_every, validate every eval_every, checkpoint (with the
  iterator's state) every checkpoint_every and at the end. Returns the final state."""
  t = run.loop
  stream = run.task.train_stream(run.seed, t.batch_size)
  train_key = run.key("train")
  start, total = int(state.step), t.steps
  t0 = t_last = time.time()
  # one job over several processes: each builds and places only its devices' rows of a batch
  rows = sharding.process_rows(mesh, t.batch_size) if jax.process_count() > 1 else None
  data = loader.iterator(stream, total, t.data_workers, data_state, start, rows)
  place = (
    (lambda b: training.shard_batch(b, mesh))
    if rows is None
    else (lambda b: sharding.shard_rows(b, mesh, t.batch_size))
  )
  log_path = os.path.join(workdir, "metrics.jsonl") if common.is_writer() else os.devnull
  with open(log_path, "a") as log:
    for i, batch in zip(
      tqdm(range(start, total), initial=start, total=total, desc="train", mininterval=5), data
    ):
      state, metrics = step_fn(state, place(batch), jax.random.fold_in(train_key, i))
      done = i + 1
      if done % t.log_every == 0 or done == total:
        row = {k: float(v) for k, v in sharding.to_host(metrics).items()}
        row.update(
          step=done,
          steps_per_s=t.log_every / max(time.time() - t_last, 1e-9),
          wall_s=time.time() - t0,
        )
        t_last = time.time()
        if done % t.eval_every == 0 or done == total:
          row.update(keeper.validate(state, done))
        log.write(json.dumps(row) + "\n")
        log.flush()
      if done % t.checkpoint_every == 0 or done == total:
        checkpoints.save(mgr, done, state, record, data_state=data.get_state())
        if stop_at_step is not None and done >= stop_at_step:
          break
  return state


def summary(workdir: str, step: int, best: dict, seconds: float) -> str:
  """The last line of a training run, for a person."""
  rows = [json.loads(l) for l in open(os.path.join(workdir, "metrics.jsonl"))]
  last = rows[-1] if rows else {}
  val = f", validation {last['val_valid']:.3f} (EMA)" if "val_valid" in last else ""
  kept = (
    f"best step {best['step']} ({best['valid']:.3f})"
    if best.get("step") is not None
    else "no step above the chance floor kept as best"
  )
  loss = f"loss {last['loss']:.4f}" if "loss" in last else "no step logged"
  return (
    f"trained to step {step} in {seconds / 60:.1f} min: {loss}{val}; "
    f"{kept}; checkpoints in {workdir}/checkpoints"
  )


def train(
  config, workdir: str, stop_at_step: int | None = None, command: str | None = None
) -> dict:
  """Train (or resume) into `workdir`; `command` (the CLI line) is recorded beside the config."""
  t0 = time.time()
  translate.check(config)
  # a latent config's codec stage first (reused once trained), then the denoiser over latents
  stage = translate.codec_stage(config)
  if stage is not None and jax.process_count() > 1 and not codec.is_trained(workdir):
    raise ValueError(
      f"{workdir}/{codec.FOLDER} holds no trained codec: train it in one process first "
      "(--mode train there trains the codec, then the denoiser; stop it and run the job), "
      "or warm-start from a shipped latent model (train.init_from)"
    )
  run = translate.translate(config, codec=codec.train(stage, workdir))
  apply, optimizer, state, data_state, mgr = restore(run, workdir)
  record = {
    "config": run.record,
    "seed": run.seed,
    "commit": common.git_commit(),
    "device": common.device_name(),
    "command": command,
  }
  if common.is_writer():
    common.write_json(os.path.join(workdir, "train_config.json"), record)
  # the batch is split over every device of the job (all processes': each builds and places
  # its devices' rows, `step_loop`); one process: the local devices
  mesh = training.data_mesh(common.job_devices())
  step_fn = training.make_train_step(
    apply,
    optimizer,
    run.task.grid,
    run.time_sampler,
    run.loss,
    ema_decay=run.optim.ema_decay,
    mesh=mesh,
  )
  items = run.task.test_items(run.loop.eval_split, run.loop.eval_samples, validation=True)
  # what noise / blank images score on these items: a step is kept as best only above it
  floor = chance_floor.floor_of(run.task, items.x, run.key("floor"))
  keeper = Keeper(apply, run, workdir, items, floor, record)
  state = step_loop(
    run,
    training.replicate(state, mesh),
    data_state,
    step_fn,
    mesh,
    mgr,
    keeper,
    workdir,
    record,
    stop_at_step,
  )
  seconds, step = time.time() - t0, int(sharding.to_host(state.step))
  if common.is_writer():
    plots.training_curves(
      os.path.join(workdir, "metrics.jsonl"), os.path.join(workdir, "training.png")
    )
    print(summary(workdir, step, keeper.best, seconds))
  return {"step": step, "best": keeper.best, "seconds": seconds}
