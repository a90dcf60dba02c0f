"""The one place an experiment config becomes the library's dataclasses.

`translate(config)` checks every section against the keys the benchmark reads (every key needs
its default in the `get_config` file; a key nobody reads, e.g. a typo or a key of another
benchmark, is a ValueError naming it) and returns a `Run`: the benchmark's Task, the denoiser
config, time sampler, optimiser, loss, the round-0 sampler and the refine config. The library
never reads a ConfigDict; the experiment modes read only `Run` and the loop knobs of
`config.train` / `config.eval` (step counts, batch sizes, splits), whose keys are checked here.
"""

from __future__ import annotations

import dataclasses

import jax

from experiments import tasks
from ipr_jax import denoisers, pretrained, refine, sampling, selectors, time_sampling, training

TOP = (
  "benchmark",
  "variant",
  "seed",
  "data",
  "model",
  "time_sampler",
  "train",
  "sample",
  "refine",
  "eval",
)
SECTIONS = {
  "time_sampler": (
    "kind",
    "sharpness",
    "add_zeros",
    "density_images",
    "concentration",
    "zeros_power",
  ),
  "train": (
    "steps",
    "batch_size",
    "learning_rate",
    "warmup_steps",
    "lr_schedule",
    "ema_decay",
    "weight_decay",
    "b1",
    "vlb_weight",
    "sigma_weight",
    "loss_reduction",
    "checkpoint_every",
    "log_every",
    "eval_every",
    "eval_samples",
    "eval_split",
    "max_to_keep",
    "data_workers",
    "init_from",
    "init_match",
  ),
  "sample": ("steps_per_patch", "overlap", "order", "alpha", "temperature", "variance"),
  "refine": ("rounds", "resampling_ratio", "steps_per_patch", "overlap", "noise_type", "selectors"),
  "eval": (
    "splits",
    "num_samples",
    "batch_size",
    "strip_samples",
    "checkpoint",
    "rounds",
    "pretrained",
    "settings_from",
  ),
}
# denoiser fields a benchmark fixes (Task.model_fields), never set in a config
GEOMETRY = ("height", "width", "channels", "patch", "position_ids", "attention_graph")
LR_SCHEDULES = ("constant", "cosine")
CHECKPOINTS = ("best", "last")
INIT_MATCH = ("all", "shapes")
DTYPES = ("float32", "bfloat16", "auto")


@dataclasses.dataclass(frozen=True, eq=False)
class Run:
  """Everything the library needs from one experiment config."""

  task: tasks.Task
  model: object  # denoiser config (TransformerConfig, UNetConfig)
  time_sampler: time_sampling.TimeSamplerConfig
  optim: training.OptimConfig
  loss: training.LossConfig
  sampler: sampling.SamplerConfig  # the round-0 pass (and validation)
  refine: refine.RefineConfig  # first selector, config.refine.rounds rounds
  selectors: tuple  # every selector evaluated


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


def check(config) -> tasks.Benchmark:
  """ValueError naming the first key that is missing or read by nothing."""
  _keys(config, "the config", TOP)
  bench = tasks.get(config.benchmark)
  _keys(config.data, f"config.data ({config.benchmark})", bench.data_keys)
  for name, keys in SECTIONS.items():
    _keys(config[name], f"config.{name}", keys)
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
  for key, value, allowed in (
    ("model.dtype", m.dtype, DTYPES),
    ("train.lr_schedule", config.train.lr_schedule, LR_SCHEDULES),
    ("eval.checkpoint", config.eval.checkpoint, CHECKPOINTS),
  ):
    if value not in allowed:
      raise ValueError(f"{key} must be one of {allowed}, got {value!r}")
  for section, key in (("eval", "pretrained"), ("eval", "settings_from"), ("train", "init_from")):
    name = config[section][key]
    if name and name not in pretrained.available():
      raise ValueError(
        f"{section}.{key} names no shipped model: {name!r} (shipped: {pretrained.available()})"
      )
  named = [s for s in config.eval.splits if isinstance(s, str)]  # Sudoku also takes (lo, hi)
  for split in named + list(config.eval.rounds.keys()):
    if bench.splits and split not in bench.splits:
      where = "eval.rounds names" if split not in named else "eval.splits holds"
      raise ValueError(
        f"{where} split {split!r}, which {config.benchmark} does not have; its "
        f"splits: {bench.splits}"
      )
  for split, rounds in config.eval.rounds.items():  # a split not evaluated now is unused
    if int(rounds) != rounds or rounds < 0:
      raise ValueError(f"eval.rounds[{split!r}] must be an integer >= 0, got {rounds}")
  if not config.refine.selectors:
    raise ValueError("refine.selectors is empty: name at least one selector")
  for name in config.refine.selectors:
    selectors.get(name)  # ValueError naming the registered selectors
  return bench


def split_rounds(config, split: str) -> int:
  """IPR rounds of `split`: eval.rounds[split] where set (e.g. Sudoku medium 15 against hard's
  30, the paper's budgets), else refine.rounds."""
  return int(config.eval.rounds.get(split, config.refine.rounds))


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
  """Check `config` and turn it into the library's dataclasses (see the module docstring).
  `codec` = (Codec, params): a latent config's trained per-region codec (`experiments.codec`)."""
  check(config)
  task = tasks.make_task(config, codec)
  m, ts, t, s, r = config.model, config.time_sampler, config.train, config.sample, config.refine
  fixed = sorted(set(task.model_fields) - set(GEOMETRY))
  if fixed:
    raise ValueError(
      f"benchmark {task.name} fixes denoiser field(s) {fixed}; a benchmark may fix only {GEOMETRY}"
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
  if t.init_match not in INIT_MATCH:
    raise ValueError(f"train.init_match must be one of {INIT_MATCH}, got {t.init_match!r}")
  warm_all = t.init_from if t.init_match == "all" else ""
  if t.init_from and t.init_match == "shapes":
    stored = pretrained.model_config(pretrained.manifest(t.init_from)["model"])
    if type(stored) is not type(model):
      raise ValueError(
        f"train.init_from={t.init_from!r} is a {type(stored).__name__}; the "
        f"config's denoiser is a {type(model).__name__}"
      )
  for key, name in (("train.init_from", warm_all), ("eval.pretrained", config.eval.pretrained)):
    if name:
      check_same_model(
        pretrained.model_config(pretrained.manifest(name)["model"]), model, f"{key}={name!r}"
      )
  optim = training.OptimConfig(
    learning_rate=t.learning_rate,
    warmup_steps=t.warmup_steps,
    ema_decay=t.ema_decay,
    decay_steps=t.steps if t.lr_schedule == "cosine" else 0,
    weight_decay=t.weight_decay,
    b1=t.b1,
  )
  sampler = sampling.SamplerConfig(
    s.steps_per_patch,
    s.overlap,
    s.order,
    alpha=s.alpha,
    temperature=s.temperature,
    variance=s.variance,
  )
  ipr = dataclasses.replace(sampler, steps_per_patch=r.steps_per_patch, overlap=r.overlap)
  selectors = tuple(r.selectors)
  return Run(
    task=task,
    model=model,
    time_sampler=time_sampling.TimeSamplerConfig(
      ts.kind, ts.sharpness, ts.add_zeros, ts.concentration, ts.zeros_power
    ),
    optim=optim,
    loss=training.LossConfig(
      vlb_weight=t.vlb_weight, sigma_weight=t.sigma_weight, reduction=t.loss_reduction
    ),
    sampler=sampler,
    refine=refine.RefineConfig(
      rounds=r.rounds,
      resampling_ratio=r.resampling_ratio,
      selector=selectors[0],
      noise_type=r.noise_type,
      initial=sampler,
      ipr=ipr,
    ),
    selectors=selectors,
  )
