"""Run bookkeeping shared by the experiment modes: config/seed/commit records, library configs."""
from __future__ import annotations

import json
import os
import subprocess

import jax

from ipr_jax import refine, sampling, time_sampling, training


def git_commit() -> str:
  """HEAD (with -dirty for uncommitted changes); IPR_JAX_COMMIT where the tree has no .git."""
  try:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                         timeout=10)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                           capture_output=True, text=True, timeout=10).stdout.strip()
    if out.returncode == 0:
      return out.stdout.strip() + ("-dirty" if dirty else "")
  except (OSError, subprocess.SubprocessError):
    pass
  return os.environ.get("IPR_JAX_COMMIT", "unknown")


def device_name() -> str:
  d = jax.devices()[0]
  return f"{d.platform}:{getattr(d, 'device_kind', '')} x{jax.device_count()}"


def write_json(path: str, obj) -> None:
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with open(path + ".tmp", "w") as f:
    json.dump(obj, f, indent=1)
  os.replace(path + ".tmp", path)


def optim_config(config) -> training.OptimConfig:
  t = config.train
  decay = t.steps if t.get("lr_schedule", "constant") == "cosine" else 0
  d = training.OptimConfig()
  return training.OptimConfig(learning_rate=t.learning_rate, warmup_steps=t.warmup_steps,
                              ema_decay=t.ema_decay, decay_steps=decay,
                              weight_decay=t.get("weight_decay", d.weight_decay),
                              b1=t.get("b1", d.b1))


def loss_config(config) -> training.LossConfig:
  t, d = config.train, training.LossConfig()
  return training.LossConfig(vlb_weight=t.get("vlb_weight", d.vlb_weight),
                             sigma_weight=t.get("sigma_weight", d.sigma_weight))


def time_sampler_config(config) -> time_sampling.TimeSamplerConfig:
  ts = config.time_sampler
  return time_sampling.TimeSamplerConfig(ts.kind, ts.sharpness, ts.add_zeros,
                                         ts.get("concentration",
                                                time_sampling.TimeSamplerConfig.concentration))


def sampler_config(config, steps_per_patch=None) -> sampling.SamplerConfig:
  s = config.sample
  return sampling.SamplerConfig(steps_per_patch or s.steps_per_patch, s.overlap, s.order,
                                alpha=s.alpha, temperature=s.temperature)


def refine_config(config, selector="uniform", rounds=None, keep_history=False,
                  mode="standard") -> refine.RefineConfig:
  r, s = config.refine, config.sample
  ipr = sampling.SamplerConfig(r.steps_per_patch, r.overlap, s.order, alpha=s.alpha,
                               temperature=s.temperature)
  return refine.RefineConfig(rounds=r.rounds if rounds is None else rounds,
                             resampling_ratio=r.resampling_ratio, selector=selector,
                             noise_type=r.noise_type, mode=mode, keep_history=keep_history,
                             initial=sampler_config(config), ipr=ipr)
