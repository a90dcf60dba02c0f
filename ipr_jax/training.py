"""Optimiser, EMA and the pure jitted train step (method 1.6), batch-sharded over local devices.

A batch is a dict: `x` f32[B, H, W, C] in [-1, 1] and optionally `mask` f32[B, R] (1 = unknown;
givens get t = 0 and weight 0, method 1.4). The step draws per-region times with the configured
sampler (method 2), noise, runs the denoiser with dropout keyed from the step key, and applies
AdamW (with warm-up and clipping) then the EMA update.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import chex
import flax
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ipr_jax import debug as debug_lib
from ipr_jax import flow, losses, regions, rng, sharding, time_sampling


@dataclasses.dataclass(frozen=True)
class OptimConfig:
  """Spec 1.6 defaults (eps 1e-8 in full fp32; the reference's 1e-7 is for bf16)."""

  learning_rate: float = 1e-4
  warmup_steps: int = 5000
  warmup_factor: float = 2e-4
  b1: float = 0.95
  b2: float = 0.999
  eps: float = 1e-8
  weight_decay: float = 1e-6
  clip_norm: float = 1.0
  ema_decay: float = 0.9999
  decay_steps: int = 0  # > 0: cosine decay to final_factor * lr at this step (incl. warm-up)
  final_factor: float = 0.05


REDUCTIONS = ("all", "unknown")


@dataclasses.dataclass(frozen=True)
class LossConfig:
  """reduction: how a masked batch's terms are averaged. "all" (method 1.5): over every pixel,
  givens (weight 0) included in the denominator, so a board weighs in proportion to its unknown
  cells. "unknown" (not in the papers; docs/results/sudoku_symbolic.md): each board's weights are scaled by
  R / (its unknown regions), i.e. every board's loss is the mean over its own unknown cells and
  boards weigh equally however many givens they have. Without a mask both are the same."""

  vlb_weight: float = 1.0
  sigma_weight: float = 0.01
  reduction: str = "all"

  def __post_init__(self):
    if self.reduction not in REDUCTIONS:
      raise ValueError(f"loss reduction must be one of {REDUCTIONS}, got {self.reduction!r}")


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # i32[]
  params: Any  # pytree of f32 arrays (the denoiser's)
  ema_params: Any  # same structure as params
  opt_state: Any  # optax state
  time_pdf: jax.Array  # f32[1000] marginal density of t for the loss weights (method 2)


def make_optimizer(cfg: OptimConfig) -> optax.GradientTransformation:
  """Clip global norm, then AdamW with linear warm-up (factor -> 1), then a constant lr (the
  papers' default) or, with `decay_steps > 0`, a cosine decay to `final_factor * lr`."""
  if cfg.decay_steps > 0:
    if cfg.decay_steps <= cfg.warmup_steps:
      raise ValueError(
        f"decay_steps ({cfg.decay_steps}) must exceed warmup_steps ({cfg.warmup_steps})"
      )
    schedule = optax.warmup_cosine_decay_schedule(
      cfg.learning_rate * cfg.warmup_factor,
      cfg.learning_rate,
      cfg.warmup_steps,
      cfg.decay_steps,
      cfg.learning_rate * cfg.final_factor,
    )
  else:
    schedule = optax.linear_schedule(
      cfg.learning_rate * cfg.warmup_factor, cfg.learning_rate, max(cfg.warmup_steps, 1)
    )
  return optax.chain(
    optax.clip_by_global_norm(cfg.clip_norm),
    optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay),
  )


def init_state(params, optimizer, time_pdf=None) -> TrainState:
  """Fresh state owning copies of `params` (the train step donates its state)."""
  params = jax.tree.map(jnp.copy, params)
  pdf = jnp.ones(time_sampling.NUM_BINS, jnp.float32) if time_pdf is None else jnp.asarray(time_pdf)
  return TrainState(
    step=jnp.zeros((), jnp.int32),
    params=params,
    ema_params=jax.tree.map(jnp.copy, params),
    opt_state=optimizer.init(params),
    time_pdf=pdf,
  )


def ema_update(ema, params, step, decay: float):
  """EMA after every optimiser step; the first update (step 0) copies the weights."""
  d = jnp.where(step == 0, 0.0, decay)
  return jax.tree.map(lambda e, p: d * e + (1.0 - d) * p, ema, params)


# the batch placements live in ipr_jax.sharding; these names are kept for training callers
data_mesh, shard_batch, replicate = sharding.data_mesh, sharding.shard_batch, sharding.replicate


def apply_mask(t, w, mask, reduction: str):
  """Givens (mask 0) get t = 0 and weight 0 (method 1.4); with reduction "unknown" each board's
  weights are also scaled by R / (its unknown regions). t, w, mask f32[B, R]."""
  chex.assert_equal_shape([t, w, mask])
  t, w = t * mask, w * mask
  if reduction == "unknown":
    w = w / jnp.maximum(jnp.mean(mask, axis=1, keepdims=True), 1.0 / mask.shape[1])
  return t, w


def _loss_fn(params, apply_fn, batch, key, step, pdf, grid, sampler_cfg, loss_cfg):
  x = batch["x"]
  b = x.shape[0]
  chex.assert_shape(x, (b, grid.height, grid.width, None))
  chex.assert_type(x, float)
  if "mask" in batch:
    chex.assert_shape(batch["mask"], (b, grid.num_regions))
  k_t, k_eps, k_drop = jax.random.split(key, 3)
  t, w = time_sampling.sample_times(
    k_t, b, grid.num_regions, sampler_cfg, pdf if sampler_cfg.kind == "mean_beta" else None
  )
  if "mask" in batch:
    t, w = apply_mask(t, w, batch["mask"], loss_cfg.reduction)
  eps = jax.random.normal(k_eps, x.shape, x.dtype)
  out = apply_fn(params, flow.interpolate(x, eps, regions.to_pixels(t, grid)), t, key=k_drop)
  return losses.srm_loss(
    out,
    x,
    eps,
    t,
    w,
    grid,
    step=step,
    vlb_weight=loss_cfg.vlb_weight,
    sigma_weight=loss_cfg.sigma_weight,
  )


def make_train_step(
  apply_fn,
  optimizer,
  grid: regions.RegionGrid,
  sampler_cfg: time_sampling.TimeSamplerConfig,
  loss_cfg: LossConfig = LossConfig(),
  ema_decay: float = 0.9999,
  mesh: Optional[Mesh] = None,
  *,
  debug: Optional[bool] = None,
):
  """Return jitted train_step(state, batch, key) -> (state, metrics), state donated.

  `debug=True` (or IPR_JAX_DEBUG_NANS=1) compiles a checked step that stops at the first NaN/Inf
  in the loss terms, the gradients or the new params (`ipr_jax.debug`).

  With a mesh, the batch is expected sharded along 'data' (see `shard_batch`) and the state
  replicated; XLA inserts the gradient all-reduce. On one device this is a plain jit.
  """

  def step_fn(state: TrainState, batch, key):
    grad_fn = jax.value_and_grad(_loss_fn, has_aux=True)
    (_, metrics), grads = grad_fn(
      state.params, apply_fn, batch, key, state.step, state.time_pdf, grid, sampler_cfg, loss_cfg
    )
    debug_lib.check_finite(metrics, "loss")
    debug_lib.check_finite(grads, "gradient")
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    debug_lib.check_finite(params, "params")
    ema = ema_update(state.ema_params, params, state.step, ema_decay)
    metrics = dict(metrics, grad_norm=optax.global_norm(grads))
    new = state.replace(step=state.step + 1, params=params, ema_params=ema, opt_state=opt_state)
    return new, metrics

  if debug_lib.requested(debug):
    jitted = debug_lib.checked(step_fn)  # one device; the checked step is for hunting NaNs
  elif mesh is None:
    jitted = jax.jit(step_fn, donate_argnums=0)
  else:
    rep = NamedSharding(mesh, PartitionSpec())
    data = NamedSharding(mesh, PartitionSpec("data"))
    jitted = jax.jit(
      step_fn, donate_argnums=0, in_shardings=(rep, data, rep), out_shardings=(rep, rep)
    )

  def train_step(state: TrainState, batch, key):
    return jitted(state, batch, rng.as_key(key))  # legacy PRNGKeys accepted too

  if hasattr(jitted, "lower"):  # ahead-of-time: train_step.lower(state, batch, key).compile()
    train_step.lower = jitted.lower
  return train_step
