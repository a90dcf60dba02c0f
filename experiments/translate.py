"""The one place an experiment config becomes dataclasses: `translate(config) -> Run`.

Every section is a config dataclass (`experiments/configs/base.py` lists them) and is built by
`ipr_jax.structs.from_dict`, so an unknown key is a ValueError naming the dataclass's fields and
a missing key takes the field's default. The benchmark's own keys (`config.data`, its model keys)
are checked against its registration. `Run` is all the experiment modes read: the task, the
denoiser config, the library's configs, the training loop and evaluation plan, the key streams
and the config as a plain dict for the files a run writes.
"""

from __future__ import annotations

import dataclasses
import zlib

import jax

from experiments import plan, tasks
from experiments.configs.base import GEOMETRY
from ipr_jax import denoisers, pretrained, refine, selectors, structs, time_sampling, training

TOP = (
  "benchmark",
  "variant",
  "seed",
  "data",
  "model",
  "time_sampler",
  "optim",
  "loss",
  "train",
  "refine",
  "eval",
)
DTYPES = ("float32", "bfloat16", "auto")
# the named key streams of a run: each is fold_in(key(seed), crc32(name)), so no two uses of
# one seed share a key, and a new stream never shifts the others
STREAMS = (
  "init",  # the denoiser's initial params
  "train",  # the train step's noise and time draws (folded with the step)
  "density",  # mean_beta's density table of t (method 2)
  "validation",  # validation sampling during training
  "floor",  # the chance floor of the validation items
  "evaluation",  # the sample / refine / evaluate modes
  "codec",  # the codec stage of a latent config
)


def stream_key(seed: int, name: str):
  """The key of named stream `name` (one of STREAMS) of run seed `seed`."""
  if name not in STREAMS:
    raise ValueError(f"no key stream {name!r}; the streams: {STREAMS}")
  return jax.random.fold_in(jax.random.key(seed), zlib.crc32(name.encode()) & 0x7FFFFFFF)


@dataclasses.dataclass(frozen=True, eq=False)
class Run:
  """Everything the experiment modes read of one config."""

  benchmark: str
  variant: str
  seed: int
  task: tasks.Task
  model: object  # denoiser config (TransformerConfig, UNetConfig)
  time_sampler: time_sampling.TimeSamplerConfig
  optim: training.OptimConfig
  loss: training.LossConfig
  refine: refine.RefineConfig  # refine.initial is the round-0 pass (and validation's)
  loop: plan.TrainLoop
  plan: plan.EvalPlan
  record: dict  # the config as plain values, written beside every result

  @property
  def sampler(self):
    """The round-0 sequential pass: validation, the sample mode and the matched baseline."""
    return self.refine.initial

  @property
  def selectors(self) -> tuple:
    """The selectors evaluated, one refine method each."""
    return tuple(self.plan.selectors) or (self.refine.selector,)

  def key(self, name: str):
    """The run's key of named stream `name` (STREAMS)."""
    return stream_key(self.seed, name)

  def split_rounds(self, split: str) -> int:
    """IPR rounds of `split`: eval.rounds[split] where set (e.g. Sudoku medium 15 against hard's
    30, the paper's budgets), else refine.rounds."""
    return int(self.plan.rounds.get(split, self.refine.rounds))


def _keys(section, where: str, expected) -> None:
  have, want = set(section.keys()), set(expected)
  unknown, missing = sorted(have - want), sorted(want - have)
  if unknown:
    raise ValueError(f"{where} has key(s) {unknown} that nothing reads; its keys: {sorted(want)}")
  if missing:
    raise ValueError(
      f"{where} lacks key(s) {missing}: every key needs its default in the config file's get_config"
    )


def model_keys(kind: str) -> tuple:
  """The keys of config.model.<kind>: the denoiser's fields less geometry and dtype."""
  if kind not in denoisers.KINDS:
    raise ValueError(f"model.kind must be one of {tuple(denoisers.KINDS)}, got {kind!r}")
  fields = [f.name for f in dataclasses.fields(denoisers.KINDS[kind][0])]
  return tuple(f for f in fields if f not in GEOMETRY + ("dtype",))


def sections(config) -> dict:
  """{Run field: dataclass} of the config's dataclass sections (ValueError naming a bad key)."""
  return {
    "time_sampler": structs.from_dict(
      time_sampling.TimeSamplerConfig, config.time_sampler, "config.time_sampler"
    ),
    "optim": structs.from_dict(training.OptimConfig, config.optim, "config.optim"),
    "loss": structs.from_dict(training.LossConfig, config.loss, "config.loss"),
    "refine": structs.from_dict(refine.RefineConfig, config.refine, "config.refine"),
    "loop": structs.from_dict(plan.TrainLoop, config.train, "config.train"),
    "plan": structs.from_dict(plan.EvalPlan, config.eval, "config.eval"),
  }


def check(config) -> dict:
  """ValueError naming the first key that is missing, read by nothing, or of a bad value;
  else the config's dataclass sections (`sections`)."""
  _keys(config, "the config", TOP)
  bench = tasks.get(config.benchmark)
  _keys(config.data, f"config.data ({config.benchmark})", bench.data_keys)
  built = sections(config)
  m = config.model
  kinds = [k for k in m.keys() if k in denoisers.KINDS]
  _keys(m, f"config.model ({config.benchmark})", ("kind", "dtype", *bench.model_keys, *kinds))
  if m.kind not in kinds:
    raise ValueError(
      f"model.kind is {m.kind!r}, but config.model has sections only for "
      f"{kinds}: add config.model.{m.kind} with keys {list(model_keys(m.kind))}"
    )
  for kind in kinds:
    _keys(m[kind], f"config.model.{kind}", model_keys(kind))
  if "codec" in m:  # a benchmark with latent variants: the codec section is a CodecRecipe
    structs.from_dict(plan.CodecRecipe, m.codec, "config.model.codec")
  if m.dtype not in DTYPES:
    raise ValueError(f"model.dtype must be one of {DTYPES}, got {m.dtype!r}")
  loop, ev = built["loop"], built["plan"]
  for key, name in (
    ("eval.pretrained", ev.pretrained),
    ("eval.settings_from", ev.settings_from),
    ("train.init_from", loop.init_from),
  ):
    if name and name not in pretrained.available():
      raise ValueError(
        f"{key} names no shipped model: {name!r} (shipped: {pretrained.available()})"
      )
  named = [s for s in ev.splits if isinstance(s, str)]  # Sudoku also takes (lo, hi)
  for split in named + list(ev.rounds):
    if bench.splits and split not in bench.splits:
      where = "eval.rounds names" if split not in named else "eval.splits holds"
      raise ValueError(
        f"{where} split {split!r}, which {config.benchmark} does not have; its "
        f"splits: {bench.splits}"
      )
  for name in ev.selectors:
    selectors.get(name)  # ValueError naming the registered selectors
  return built


def codec_stage(config) -> plan.CodecStage | None:
  """The codec stage of a latent config (config.model.codec.latent_dim > 0), else None."""
  if "codec" not in config.model:
    return None
  recipe = structs.from_dict(plan.CodecRecipe, config.model.codec, "config.model.codec")
  if not recipe.latent_dim:
    return None
  loop, ev = (sections(config)[k] for k in ("loop", "plan"))
  return plan.CodecStage(
    recipe=recipe,
    source=config.data.source,
    idx_dir=config.data.idx_dir,
    seed=int(config.seed),
    init_from=loop.init_from,
    pretrained=ev.pretrained,
  )


def check_same_model(stored, model, what: str) -> None:
  """ValueError unless the denoiser config `stored` (a shipped or imported model's) is the
  config's `model` up to the compute dtype (the run's choice), naming the fields that differ."""
  differ = [
    f"{f.name} {getattr(stored, f.name)} vs {getattr(model, f.name)}"
    if f.name not in ("position_ids", "attention_graph")
    else f.name
    for f in dataclasses.fields(model)
    if f.name != "dtype" and getattr(stored, f.name, None) != getattr(model, f.name)
  ]
  if type(stored) is not type(model) or differ:
    raise ValueError(
      f"{what} is a {type(stored).__name__} that differs from the config's "
      f"{type(model).__name__} in: {', '.join(differ) or 'kind'} (stored vs "
      f"config); the weights need the config's architecture"
    )


def compute_dtype(name: str) -> str:
  """model.dtype: float32, bfloat16, or auto (bfloat16 on GPU/TPU, float32 on CPU)."""
  if name == "auto":
    return "bfloat16" if jax.default_backend() in ("gpu", "tpu") else "float32"
  return name


def translate(config, codec=None) -> Run:
  """Check `config` and turn it into a Run (see the module docstring). `codec` = (Codec,
  params): a latent config's trained per-region codec (`experiments.codec`)."""
  built = check(config)
  loop, ev = built["loop"], built["plan"]
  task = tasks.make_task(config, codec)
  m = config.model
  fixed = sorted(set(task.model_fields) - set(GEOMETRY))
  if fixed:
    raise ValueError(
      f"benchmark {task.name} fixes denoiser field(s) {fixed}; a benchmark may fix only {GEOMETRY}"
    )
  lacks = sorted(
    set(task.model_fields) - {f.name for f in dataclasses.fields(denoisers.KINDS[m.kind][0])}
  )
  if lacks:
    raise ValueError(
      f"benchmark {task.name} fixes denoiser field(s) {lacks}, which a model.kind={m.kind!r} "
      "denoiser does not have: pick a kind the benchmark supports"
    )
  model = denoisers.make_config(
    m.kind, **task.model_fields, **m[m.kind].to_dict(), dtype=compute_dtype(m.dtype)
  )
  if m.kind == "transformer" and not (model.skip or model.pixel_head):
    values = model.patch * model.patch * model.channels
    if model.dim < values:
      raise ValueError(
        f"model.transformer.dim={model.dim} is below the {values} values of a region "
        f"({model.patch}x{model.patch}x{model.channels}): its linear velocity head cannot "
        f"remove the noise outside a {model.dim}-dimensional subspace of them; set "
        f"model.transformer.skip=True (a z_t skip), a pixel_head or dim >= {values}"
      )
  warm_all = loop.init_from if loop.init_match == "all" else ""
  if loop.init_from and loop.init_match == "shapes":
    stored = pretrained.model_config(pretrained.manifest(loop.init_from)["model"])
    if type(stored) is not type(model):
      raise ValueError(
        f"train.init_from={loop.init_from!r} is a {type(stored).__name__}; the "
        f"config's denoiser is a {type(model).__name__}"
      )
  for key, name in (("train.init_from", warm_all), ("eval.pretrained", ev.pretrained)):
    if name:
      check_same_model(
        pretrained.model_config(pretrained.manifest(name)["model"]), model, f"{key}={name!r}"
      )
  optim = built["optim"]
  if optim.decay_steps and optim.decay_steps != loop.steps:
    print(
      f"note: optim.decay_steps={optim.decay_steps} differs from train.steps={loop.steps}: "
      "the cosine ends there (set both when you change the length of a cosine run)"
    )
  return Run(
    benchmark=config.benchmark,
    variant=config.variant,
    seed=int(config.seed),
    task=task,
    model=model,
    record=config.to_dict(),
    **built,
  )
