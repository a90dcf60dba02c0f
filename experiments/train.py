"""Training mode: resumable, checkpointed, logged, with a validation valid-rate that keeps the
best EMA params in DIR/best (the model that sampling uses)."""
from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp
from tqdm import tqdm

from experiments import chance_floor, common, plots, prefetch, tasks
from ipr_jax import checkpoints, denoisers, sampling, sharding, time_sampling, training


def build_state(config, task):
  """(apply, optimizer, fresh TrainState) for this config; the density table is filled later."""
  key = jax.random.key(config.seed)
  apply, params = denoisers.build(task.model_config, jax.random.fold_in(key, 0))
  optimizer = training.make_optimizer(common.optim_config(config))
  return apply, optimizer, training.init_state(params, optimizer)


def validate(apply, params, task, config, items) -> dict:
  """Mean metrics of the SRM sampler's round-0 samples on `items`, the validation puzzles
  (`task.test_items(..., validation=True)`, never the test set)."""
  res = sampling.sample(apply, params, jax.random.key(config.seed + 1),
                        jax.random.normal(jax.random.key(config.seed + 2), items.x.shape),
                        ~items.eligible, jnp.asarray(items.x), common.sampler_config(config),
                        devices=sharding.devices_for(len(items.x)))
  return {k: float(jnp.mean(v)) for k, v in task.metric_fn(res.x).items()}


def is_better(new: dict, best: dict) -> bool:
  """Headline validation rate first. At a tie (e.g. no valid board yet early in image Sudoku)
  fewer duplicates win where both steps measured them, else the later, longer-trained step."""
  if new["valid"] != best["valid"]:
    return new["valid"] > best["valid"]
  if "duplicate_count" in new and "duplicate_count" in best:
    return new["duplicate_count"] < best["duplicate_count"]
  return True


def train(config, workdir: str, stop_at_step: int | None = None, command: str | None = None) -> dict:
  """Train (or resume) into `workdir`; `command` (the CLI line) is recorded beside the config."""
  task = tasks.make_task(config)
  apply, optimizer, state = build_state(config, task)
  mgr = checkpoints.manager(os.path.join(workdir, "checkpoints"), config.train.max_to_keep)
  best_mgr = checkpoints.manager(os.path.join(workdir, "best"), 1)
  record = {"config": config.to_dict(), "seed": config.seed, "commit": common.git_commit(),
            "device": common.device_name(), "command": command}
  if mgr.latest_step() is not None:
    state, _ = checkpoints.restore(mgr, state)
    print(f"resumed from step {int(state.step)} in {workdir}")
  elif config.time_sampler.kind == "mean_beta":
    pdf = time_sampling.mean_beta_density(jax.random.key(config.seed + 3), task.grid.num_regions,
                                          config.time_sampler.sharpness,
                                          config.time_sampler.density_images)
    state = state.replace(time_pdf=jnp.asarray(pdf))
  common.write_json(os.path.join(workdir, "train_config.json"), record)
  mesh = training.data_mesh()
  step_fn = training.make_train_step(apply, optimizer, task.grid,
                                     common.time_sampler_config(config), common.loss_config(config),
                                     ema_decay=config.train.ema_decay,
                                     mesh=mesh)
  state = training.replicate(state, mesh)
  stream = task.train_stream(config.seed, config.train.batch_size)
  best_path = os.path.join(workdir, "best.json")
  best = json.load(open(best_path)) if os.path.exists(best_path) else {"valid": -1.0}
  train_key = jax.random.fold_in(jax.random.key(config.seed), 1)
  start, total = int(state.step), config.train.steps
  log = open(os.path.join(workdir, "metrics.jsonl"), "a")
  val_items = task.test_items(config.train.eval_split, config.train.eval_samples, validation=True)
  # what noise / blank images score on these items: a step is kept as best only above it
  floor = chance_floor.floor_of(task, val_items.x, jax.random.key(config.seed + 4))
  t0, t_last = time.time(), time.time()
  data = prefetch.batches(stream, start, total, config.train.get("data_workers", 0))
  for i, batch in zip(tqdm(range(start, total), initial=start, total=total, desc="train",
                           mininterval=5), data):
    batch = training.shard_batch(batch, mesh)
    state, metrics = step_fn(state, batch, jax.random.fold_in(train_key, i))
    done = i + 1
    if done % config.train.log_every == 0 or done == total:
      row = {k: float(v) for k, v in metrics.items()}
      row.update(step=done, steps_per_s=config.train.log_every / max(time.time() - t_last, 1e-9),
                 wall_s=time.time() - t0)
      t_last = time.time()
      if done % config.train.eval_every == 0 or done == total:
        ema = validate(apply, state.ema_params, task, config, val_items)
        row["val_valid"] = ema[task.headline]
        row["val_valid_raw"] = validate(apply, state.params, task, config, val_items)[task.headline]
        row.update({f"val_{k}": v for k, v in ema.items() if k != task.headline})
        score = {"valid": row["val_valid"], "step": done}
        if "duplicate_count" in ema:
          score["duplicate_count"] = ema["duplicate_count"]
        row["val_floor"] = floor
        if score["valid"] > floor and is_better(score, best):
          best = score
          checkpoints.save(best_mgr, done, state, record)
          common.write_json(best_path, best)
      log.write(json.dumps(row) + "\n")
      log.flush()
    if done % config.train.checkpoint_every == 0 or done == total:
      checkpoints.save(mgr, done, state, record)
      if stop_at_step is not None and done >= stop_at_step:
        break
  data.close()  # stops the workers of a run that ended early
  log.close()
  plots.training_curves(os.path.join(workdir, "metrics.jsonl"), os.path.join(workdir, "training.png"))
  return {"step": int(state.step), "best": best, "seconds": time.time() - t0}
