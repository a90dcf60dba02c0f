"""The base of every experiment config: each section is a config dataclass's defaults.

    config.time_sampler  = ipr_jax.time_sampling.TimeSamplerConfig
    config.optim         = ipr_jax.training.OptimConfig
    config.loss          = ipr_jax.training.LossConfig
    config.refine        = ipr_jax.refine.RefineConfig (its round-0 pass in `initial`, the pass
                           of every round in `ipr`: ipr_jax.sampling.SamplerConfig each)
    config.train         = experiments.plan.TrainLoop
    config.eval          = experiments.plan.EvalPlan
    config.model.<kind>  = the denoiser config of each registered kind, less the geometry the
                           benchmark fixes and the dtype (config.model.dtype)

`experiments.translate` builds those dataclasses back with `ipr_jax.structs.from_dict`, so a
field added to one of them is a config key (and a `--config.<section>.<field>` flag) with no
other edit. A benchmark's config file calls `get_config(benchmark, variant)` and states only
its differences, plus its own `data` and model keys.
"""

from __future__ import annotations

import dataclasses
import typing

import ml_collections
from ml_collections import config_dict

from experiments import plan
from ipr_jax import denoisers, refine, structs, time_sampling, training

# denoiser fields a benchmark fixes (Task.model_fields), never set in a config
GEOMETRY = ("height", "width", "channels", "patch", "position_ids", "attention_graph")


def section(cfg) -> ml_collections.ConfigDict:
  """The config section of dataclass instance `cfg`: its fields, nested dataclasses nested; an
  Optional field left at None becomes a typed placeholder, so `--config...=4` can still set it."""
  out = structs.to_dict(cfg)
  hints = typing.get_type_hints(type(cfg))
  for f in dataclasses.fields(cfg):
    value = getattr(cfg, f.name)
    if dataclasses.is_dataclass(value):
      out[f.name] = section(value)
    elif value is None:
      inner = [a for a in typing.get_args(hints[f.name]) if a is not type(None)]
      out[f.name] = config_dict.placeholder(inner[0] if len(inner) == 1 else object)
  return ml_collections.ConfigDict(out)


def model_section(kind: str) -> dict:
  """config.model.<kind>: the defaults of denoiser `kind`'s config, less geometry and dtype."""
  return {
    f.name: f.default
    for f in dataclasses.fields(denoisers.KINDS[kind][0])
    if f.name not in GEOMETRY + ("dtype",) and f.default is not dataclasses.MISSING
  }


def get_config(benchmark: str, variant: str) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.benchmark, c.variant, c.seed = benchmark, variant, 0
  c.data = {}  # the benchmark's keys (experiments/tasks/)
  # model.kind picks the denoiser section; dtype: float32, bfloat16 or auto (bf16 on GPU/TPU)
  c.model = dict(
    kind="transformer", dtype="float32", **{k: model_section(k) for k in denoisers.KINDS}
  )
  c.time_sampler = section(time_sampling.TimeSamplerConfig())
  c.optim = section(training.OptimConfig())
  c.loss = section(training.LossConfig())
  c.refine = section(refine.RefineConfig())
  c.train = section(plan.TrainLoop())
  c.eval = section(plan.EvalPlan())
  return c
