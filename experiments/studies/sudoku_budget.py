"""Where IPR pays on Sudoku: valid rate against NFE per puzzle, and verifier-free methods.

    python -m experiments.studies.sudoku_budget [--benchmark sudoku_symbolic]
        [--model sudoku_symbolic_cpu] [--split hard] [--num 100] [--validation] [--methods all]
        [--variance learned_range] [--alpha A] [--temperature T]
        [--out docs/results/sudoku_symbolic/sudoku_budget]

`--benchmark mnist_sudoku` runs the same methods on a shipped image-Sudoku latent model (default
mnist_sudoku_latent_19k; its codec, and the decoded board's digit classifier as the metric; a
real-MNIST model needs IPR_JAX_MNIST_DIR). `--validation` draws the puzzles from the validation
boards instead of the held-out test set: choose settings there, score them on the test set.

On the same puzzles, with one shipped model (issue 14, items 3 and 4):
- `sequential`: the SRM sequential pass alone with 3, 6, 11 and 16 steps per cell (one point
  each); `sequential_<s>[_order<name>]`: one such point, s steps per cell, with another
  generation order (e.g. random: is the model's easiest-first order worth anything?);
- `ipr_uniform` / `ipr_uncertainty`: 30 IPR rounds with the paper's settings (initial pass 3
  steps per cell, IPR 10 steps per cell, overlap 0.8, ratio 0.25), a curve over rounds;
- `ipr_decay`: the ratio decaying linearly 0.4 -> 0.1 over the 30 rounds (`final_ratio`);
- `ipr_deterministic`: the paper's rounds with alpha = 0 (deterministic steps) in every pass;
- `hybrid_first11`: a first pass with 11 steps per cell, then 15 uniform rounds;
- `ipr_steps20`: 15 uniform rounds with 20 steps per cell each (twice the paper's);
- `ipr_<selector>_ratio<r>[_to<f>][_steps<s>][_ov<o>][_order<name>][_power<p>]` (any r in
  (0, 1], selector uniform or uncertainty; f the last round's ratio, linear from r over the
  rounds; s steps per cell in each round's pass instead of the paper's 10; o the rounds' overlap
  instead of the paper's 0.8; name the rounds' generation order instead of greedy, e.g.
  parallel: every re-noised cell at once, s evaluations a round; p the uncertainty selector's
  power, weights sigma ** p instead of sigma): the paper's rounds re-noising a fraction r of the
  cells, as many rounds as fit in the NFE of 30 paper rounds (a round's plan grows by 2 steps
  per extra cell at overlap 0.8, so r = 0.5 fits 16);
- `chains2_lowest_sigma`: 2 chains of 12 rounds, per puzzle the chain the model doubts least;
  `chains2_uncertainty`: the same with the uncertainty selector in each chain;
- `chains<k>_<selector>_ratio<r>`: k chains (2-9) of the rounds above at ratio r, as many rounds
  as fit, then the lowest-sigma choice (`chains2_lowest_sigma` is chains2_uniform_ratio0.25);
- `chains3_vote`: 3 chains of 6 rounds, per-cell vote (medoid) across them, then 1 uniform round
  in correction mode;
- `chains<k>_<selector>_ratio<r>_probe` (k 2-19): k chains of such rounds, and after every round
  per puzzle the chain the model doubts least when probed (`RefineConfig.pick="probe"`,
  `ipr_jax.doubt`: 4 NFE per chain and round, counted); `_lowest_sigma` instead of `_probe`:
  the same pick by the last passes' sigma;
- `restarts<k>_probe` / `restarts<k>_lowest_sigma`: k independent SRM passes (round 0 only),
  then the same pick: verifier-free restarts, sized by k (not to the budget);
- `restarts_curve<k>`: k restarts once, then the probe and the lowest-sigma picks among the
  first 1..k of them, two curves (`restarts_probe`, `restarts_lowest_sigma`) over the NFE of
  k restarts; the JSON adds `restarts_any`, the share of puzzles that any of the first k
  restarts solved (read from the rules: the ceiling of a pick, not a method).
Every other method is sized to the NFE of 30 paper rounds, at most 10% below it (the chains pay
their own initial passes). `--variance fixed_small` (or fixed_large) runs every method with that
reverse-step std in every pass instead of the papers' learned_range; its curves are labelled
`<method>@<variance>`, each with its command under "commands"; `--alpha` (every pass's
stochasticity, the paper's 0.5) and `--temperature` (a factor on every stochastic step's std) add
`,alpha<a>` / `,T<t>` to the label. `--doubt typicality` orders and selects every method's
cells by the typicality of the denoiser's clean estimates (a latent model's shipped mixture,
`ipr_jax.typicality`) instead of its sigma, and adds `,typicality`.
No Sudoku rule is consulted while sampling; the rules only score. Writes OUT_<split>.json (every
curve with its cumulative NFE per puzzle, config, seed, commit) and OUT_<split>.png (`_val`
before the suffix with `--validation`), and prints each method's valid rate at the NFE of 30
paper rounds (interpolated on its curve where it has one; that NFE is planned where the paper's
rounds were not run).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags
from tqdm import tqdm

from experiments import common, evaluate, plots, shipped
from ipr_jax import chains, doubt, orders, pretrained, refine, sampling

SEQUENTIAL_STEPS = (3, 6, 11, 16)
RATIOS = (0.125, 0.375, 0.5, 0.75, 1.0)  # of `ipr_<selector>_ratio<r>` in "all"
ROUND_METHODS = (
  "ipr_uniform",
  "ipr_uncertainty",
  "ipr_decay",
  "hybrid_first11",
  "ipr_deterministic",
  "ipr_steps20",
  *(f"ipr_{sel}_ratio{r:g}" for sel in ("uniform", "uncertainty") for r in RATIOS),
)
METHODS = (
  "sequential",
  *ROUND_METHODS,
  "chains2_lowest_sigma",
  "chains2_uncertainty",
  "chains3_vote",
)
_SEQUENTIAL_METHOD = re.compile(r"sequential_([1-9][0-9]*)(?:_order([a-z_]+))?")
_RATIO_METHOD = re.compile(
  r"ipr_(uniform|uncertainty)_ratio([0-9.]+)(?:_to([0-9.]+))?(?:_steps([1-9][0-9]*))?"
  r"(?:_ov([0-9.]+))?(?:_order([a-z]+))?(?:_power([0-9.]+))?"
)
# the ratio methods' names, as error messages and --help print them
RATIO_FORM = "ipr_<selector>_ratio<r>[_to<f>][_steps<s>][_ov<o>][_order<name>][_power<p>]"
_CHAIN_METHOD = re.compile(
  r"chains([2-9]|1[0-9])_(uniform|uncertainty)_ratio([0-9.]+)(_probe|_lowest_sigma)?"
)
_RESTART_METHOD = re.compile(r"restarts([2-9]|[1-9][0-9])_(probe|lowest_sigma)")
_RESTART_CURVE = re.compile(r"restarts_curve([2-9]|[1-9][0-9])")
# the model each benchmark's study runs by default (the symbolic curves in the docs are
# sudoku_symbolic_cpu's)
DEFAULT_MODEL = {
  "sudoku_symbolic": "sudoku_symbolic_cpu",
  "mnist_sudoku": shipped.MODELS["mnist_sudoku"][0],
}
NUM_CELLS = 81  # the plans of the batch's largest unknown count (a hard puzzle can have none given)


def _valid(task, x) -> np.ndarray:
  return np.asarray(task.metrics(x)["valid"])


def _refine(apply, params, items, cfg, task, key, **kw):
  res = refine.refine(
    apply,
    params,
    key,
    jnp.asarray(items.x),
    jnp.asarray(items.eligible),
    cfg,
    task.metric_fn,
    metric_params=task.metric_params,
    **kw,
  )
  return res


def curve(nfe_per_round, valid_per_round) -> dict:
  """{"nfe": cumulative NFE per puzzle after each round, "valid": rate after each round}."""
  return {
    "nfe": np.cumsum(nfe_per_round).astype(int).tolist(),
    "valid": [round(float(v), 4) for v in valid_per_round],
  }


def every_pass(cfg, **changes):
  """The refine config with `changes` made to its initial pass and its rounds alike."""
  return dataclasses.replace(
    cfg,
    initial=dataclasses.replace(cfg.initial, **changes),
    ipr=dataclasses.replace(cfg.ipr, **changes),
  )


def at_ratio(
  base: refine.RefineConfig,
  ratio: float,
  selector: str,
  num_chains: int = 1,
  pick=None,
  steps: int | None = None,
  power: float | None = None,
  final: float | None = None,
  overlap: float | None = None,
  order: str | None = None,
) -> refine.RefineConfig:
  """The paper's rounds re-noising `ratio` of the cells in `num_chains` chains (each paying its
  own round 0 and, with a `pick`, its probes), each round's pass with `steps` per cell where set,
  the uncertainty selector's weights sigma ** `power` where set, the ratio falling (or rising)
  linearly to `final` by the last round where set, the rounds' `overlap` and generation `order`
  where set: as many rounds as fit in `base`'s NFE."""
  budget = planned_nfe(base, NUM_CELLS)
  cfg = dataclasses.replace(
    base,
    ipr=dataclasses.replace(
      base.ipr,
      steps_per_patch=steps or base.ipr.steps_per_patch,
      overlap=base.ipr.overlap if overlap is None else overlap,
      order=order or base.ipr.order,
    ),
    resampling_ratio=ratio,
    selector=selector,
    selector_power=base.selector_power if power is None else power,
    final_ratio=final,
    rounds=0,
    chains=None if num_chains == 1 else num_chains,
    pick=pick,
  )
  # each chain gets an equal share; with `final` a round's size depends on the round count
  return dataclasses.replace(cfg, rounds=_most_rounds(cfg, budget // num_chains))


def _most_rounds(cfg: refine.RefineConfig, budget: int) -> int:
  """The most rounds of `cfg` (at least 1) whose planned NFE stays within `budget`."""
  lo, hi = 1, 2
  while planned_nfe(dataclasses.replace(cfg, rounds=hi), NUM_CELLS) <= budget:
    lo, hi = hi, 2 * hi
  while hi - lo > 1:  # planned NFE only grows with the rounds: bisect
    mid = (lo + hi) // 2
    fits = planned_nfe(dataclasses.replace(cfg, rounds=mid), NUM_CELLS) <= budget
    lo, hi = (mid, hi) if fits else (lo, mid)
  return lo


# the first two chain methods, by the names their curves were recorded under
CHAIN_ALIASES = {
  "chains2_lowest_sigma": "chains2_uniform_ratio0.25",
  "chains2_uncertainty": "chains2_uncertainty_ratio0.25",
}


def paper_config(run) -> refine.RefineConfig:
  """The paper's 30 uniform rounds with the run's steps, overlap, ratio and std."""
  return dataclasses.replace(run.refine, rounds=30, selector="uniform")


def method_config(name: str, base: refine.RefineConfig) -> refine.RefineConfig | None:
  """The refine config of method `name`, built from the paper's 30 rounds `base` (None for
  `sequential`, which has no rounds); ValueError for an unknown name, a bad ratio or chain count."""
  if name == "sequential":
    return None
  seq = _SEQUENTIAL_METHOD.fullmatch(name)
  if seq:
    if seq.group(2):
      orders.get(seq.group(2))  # ValueError naming the registered orders
    return None
  curve_of = _RESTART_CURVE.fullmatch(name)
  if curve_of:  # every chain returned: the picks are made among prefixes by run_method
    return dataclasses.replace(base, rounds=0, chains=int(curve_of.group(1)))
  if name == "chains3_vote":  # 6 rounds in each of 3 chains, then a vote and one correction round
    return dataclasses.replace(base, rounds=6, chains=3)
  restart = _RESTART_METHOD.fullmatch(name)
  if restart:
    return dataclasses.replace(base, rounds=0, chains=int(restart.group(1)), pick=restart.group(2))
  chain = _CHAIN_METHOD.fullmatch(CHAIN_ALIASES.get(name, name))
  if chain:
    k, selector, ratio, pick = chain.groups()
    return at_ratio(base, float(ratio), selector, int(k), pick and pick[1:])
  match = _RATIO_METHOD.fullmatch(name)
  if match:
    selector, ratio, final, steps, overlap, order, power = match.groups()
    if power is not None and (selector != "uncertainty" or not float(power) > 0):
      raise ValueError(f"_power<p> needs the uncertainty selector and p > 0, got {name!r}")
    return at_ratio(
      base,
      float(ratio),
      selector,
      steps=steps and int(steps),
      power=power and float(power),
      final=final and float(final),
      overlap=overlap and float(overlap),
      order=order,
    )

  def rounds_at(rounds, **ipr):
    return dataclasses.replace(base, rounds=rounds, ipr=dataclasses.replace(base.ipr, **ipr))

  named = {
    "ipr_uniform": lambda: base,
    "ipr_deterministic": lambda: every_pass(base, alpha=0.0),
    "ipr_uncertainty": lambda: dataclasses.replace(base, selector="uncertainty"),
    "ipr_decay": lambda: dataclasses.replace(base, resampling_ratio=0.4, final_ratio=0.1),
    "hybrid_first11": lambda: dataclasses.replace(
      base, rounds=15, initial=dataclasses.replace(base.initial, steps_per_patch=11)
    ),
    "ipr_steps20": lambda: rounds_at(15, steps_per_patch=20),
  }
  if name not in named:
    raise ValueError(
      f"unknown method; methods: {', '.join(METHODS)} (and any "
      f"{RATIO_FORM}, chains<k>_<selector>_ratio<r>[_probe|_lowest_sigma], "
      f"restarts<k>_probe|lowest_sigma)"
    )
  return named[name]()


def planned_nfe(cfg: refine.RefineConfig, eligible: int) -> int:
  """NFE per puzzle of round 0 and every round for `eligible` unknown cells (the batch's
  largest): the scan lengths of the passes' plans, known before anything runs."""
  rounds = refine.m_tables(cfg, eligible)[:, eligible]
  probes = (cfg.rounds + 1) * cfg.probe_draws if cfg.pick == "probe" else 0
  return (
    sampling.max_steps(eligible, cfg.initial)
    + sum(sampling.max_steps(int(m), cfg.ipr) for m in rounds)
    + probes
  )


def run_method(name, apply, params, items, run, key) -> list:
  """[(label, curve)] of one method (sequential gives one point per steps setting)."""
  task, cfg = run.task, method_config(name, paper_config(run))
  if cfg is None:  # sequential passes alone
    seq = _SEQUENTIAL_METHOD.fullmatch(name)
    steps = (int(seq.group(1)),) if seq else SEQUENTIAL_STEPS
    named = seq.group(2) if seq else None  # another order than the run's (greedy)
    out = []
    for s in steps:
      sampler = dataclasses.replace(
        run.sampler, steps_per_patch=s, order=named or run.sampler.order
      )
      m, nfe = evaluate.run_matched(
        apply, params, items, sampler, task, key, len(items.x), desc=f"sequential {s}"
      )
      label = f"sequential_{s}" + (f"_order{named}" if named else "")
      out.append((label, curve(nfe, m["valid"].mean(axis=1))))
    return out
  res = _refine(apply, params, items, cfg, task, key)
  if _RESTART_CURVE.fullmatch(name):
    return restart_curves(res, apply, params, items, cfg, key)
  if cfg.chains is None or cfg.pick is not None:  # one sample per puzzle (picked per round)
    return [(name, curve(res.nfe, np.asarray(res.metrics["valid"]).mean(axis=1)))]
  total = int(np.sum(res.nfe))  # every chain's rounds, NFE per puzzle
  if name == "chains3_vote":
    voted = chains.region_vote(res.x, task.grid)
    fix = _refine(
      apply,
      params,
      dataclasses.replace(items, x=np.asarray(voted)),
      dataclasses.replace(cfg, rounds=1, chains=None, mode="correction"),
      task,
      jax.random.split(key)[1],  # the correction round's own key
    )
    return [
      (
        name,
        {
          "nfe": [total + int(np.sum(fix.nfe))],
          "valid": [round(float(_valid(task, fix.x).mean()), 4)],
          "after_vote": round(float(_valid(task, voted).mean()), 4),
        },
      )
    ]
  x, _ = chains.lowest_sigma(res.x, res.sigma, jnp.asarray(items.eligible))
  per_chain = np.asarray(res.metrics["valid"]).mean(axis=-1)  # [K, rounds+1]
  return [
    (
      name,
      {
        "nfe": [total],
        "valid": [round(float(_valid(task, x).mean()), 4)],
        "per_chain_final": per_chain[:, -1].round(4).tolist(),
      },
    )
  ]


def restart_curves(res, apply, params, items, cfg, key) -> list:
  """The probe and lowest-sigma picks among the first 1..K restarts of `res` (K chains of round
  0, every chain returned): each chain probed with the keys refine's own pick would use."""
  eligible = jnp.asarray(items.eligible)
  ids = np.arange(len(items.x))
  valid = np.asarray(res.metrics["valid"])[:, 0]  # [K, N]
  scores = {
    "probe": np.asarray(refine.probe_chains(apply, params, key, ids, res.x, eligible, cfg, 0)),
    "lowest_sigma": np.asarray(doubt.eligible_mean(res.sigma, eligible)),
  }
  per_chain = int(res.nfe[0, 0])
  out = []
  for pick, score in scores.items():
    nfe = per_chain + (cfg.probe_draws if pick == "probe" else 0)
    picked = [float(valid[score[:k].argmin(0), ids].mean()) for k in range(1, cfg.chains + 1)]
    c = curve([nfe] * cfg.chains, picked)
    c["restarts_any"] = [round(float(valid[:k].max(0).mean()), 4) for k in range(1, cfg.chains + 1)]
    out.append((f"restarts_{pick}", c))
  return out


def sampler_suffix(variance: str, alpha, temperature: float, typical: bool = False) -> str:
  """The label suffix of a curve drawn with other sampler settings than the papers':
  '' for learned_range, alpha 0.5, temperature 1 and the model's own doubt; else
  '@fixed_small,alpha0.25,T0.7,typicality' style."""
  parts = [] if variance == "learned_range" else [variance]
  if alpha is not None:
    parts.append(f"alpha{alpha:g}")
  if temperature != 1.0:
    parts.append(f"T{temperature:g}")
  if typical:
    parts.append("typicality")
  if parts and variance == "learned_range":
    parts.insert(0, variance)
  return "@" + ",".join(parts) if parts else ""


def sampler_flags(alpha, temperature: float) -> str:
  """The command-line flags that reproduce `sampler_suffix`'s alpha and temperature."""
  return (f" --alpha {alpha:g}" if alpha is not None else "") + (
    f" --temperature {temperature:g}" if temperature != 1.0 else ""
  )


def at_nfe(c: dict, nfe: float) -> float | None:
  """The curve's valid rate at `nfe` (linear between rounds); a curve or point that ends within
  10% below `nfe` gives its last value (a method that spends a little less is not extrapolated);
  None when it is further off."""
  xs, ys = c["nfe"], c["valid"]
  if xs[-1] < nfe:
    return ys[-1] if nfe - xs[-1] <= 0.1 * nfe else None
  if len(xs) == 1:
    return ys[0] if xs[0] - nfe <= 0.1 * nfe else None
  if nfe < xs[0]:
    return None
  return float(np.interp(nfe, xs, ys))


PANELS = ("", "fixed_small", "fixed_large")  # one panel per reverse std ("": learned_range)


def panel_of(label: str) -> tuple[str, str]:
  """(panel, name) of a curve label `<method>[@<sampler suffix>]`: the panel is its reverse std
  ('' for the papers' learned_range), the name the method with its other settings (alpha,
  temperature), e.g. 'ipr_x@learned_range,T0.7' -> ('', 'ipr_x (T0.7)')."""
  method, _, suffix = label.partition("@")
  parts = suffix.split(",") if suffix else []
  variance = parts.pop(0) if parts and not parts[0].startswith(("alpha", "T")) else ""
  return ("" if variance == "learned_range" else variance), method + (
    f" ({','.join(parts)})" if parts else ""
  )


def plot(results: dict, path: str) -> str:
  """One panel per reverse std (the papers' learned_range, fixed_small, fixed_large) with every
  curve drawn with it, other alpha or temperature in the curve's name; the sequential points
  as one dashed line."""
  import matplotlib.pyplot as plt

  by_panel = {p: {} for p in PANELS}
  for k, c in results["curves"].items():
    panel, name = panel_of(k)
    by_panel[panel][name] = c
  panels = [p for p in PANELS if by_panel[p]]
  fig, axes = plt.subplots(
    1, len(panels), figsize=(7.5 * len(panels), 7), sharey=True, squeeze=False
  )
  for ax, panel in zip(axes[0], panels):
    curves = by_panel[panel]
    plain = [k for k in curves if re.fullmatch(r"sequential_[0-9]+", k)]  # the greedy line
    seq = sorted((curves[k]["nfe"][0], curves[k]["valid"][0]) for k in plain)
    if seq:
      ax.plot(*zip(*seq), "s--", color="gray", label="sequential pass alone (3-16 steps per cell)")
    others = [k for k in curves if k not in plain]
    colours = plt.get_cmap("tab20")
    for i, k in enumerate(others):
      c = curves[k]
      one = len(c["nfe"]) == 1
      ax.plot(
        c["nfe"],
        c["valid"],
        "*" if one else "o-",
        ms=11 if one else 2.5,
        lw=1.2,
        color=colours(i % 20),
        label=k,
      )
    ceiling = next((c for c in curves.values() if "restarts_any" in c), None)
    if ceiling:  # the share of puzzles any restart solved: what a perfect pick would reach
      ax.plot(ceiling["nfe"], ceiling["restarts_any"], ":", color="k", label="any restart right")
    if "paper_nfe" in results:
      ax.axvline(results["paper_nfe"], color="k", lw=0.6, ls=":", label="NFE of 30 paper rounds")
    ax.set_xlabel("denoiser evaluations (NFE) per puzzle")
    ax.set_title(f"reverse std {panel or 'learned_range (spec)'}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3, frameon=False)
  axes[0][0].set_ylabel(plots.metric_label("valid"))
  fig.suptitle(
    f"{results['model']}: {results['num']} "
    f"{'validation' if results.get('validation') else 'held-out'} {results['split']} puzzles",
    fontsize=11,
  )
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def define_flags(f):
  flags.DEFINE_enum(
    "benchmark", "sudoku_symbolic", list(DEFAULT_MODEL), "whose shipped model", flag_values=f
  )
  flags.DEFINE_string(
    "model", "", "shipped model (default: the benchmark's, DEFAULT_MODEL)", flag_values=f
  )
  flags.DEFINE_string("split", "hard", "held-out split", flag_values=f)
  flags.DEFINE_integer("num", 100, "held-out puzzles", flag_values=f)
  flags.DEFINE_bool(
    "validation", False, "validation puzzles instead of the held-out test set", flag_values=f
  )
  flags.DEFINE_integer("seed", 0, "the key of every method", flag_values=f)
  flags.DEFINE_string(
    "methods",
    "all",
    f"comma list of {METHODS} (any {RATIO_FORM}, "
    "chains<k>_<selector>_ratio<r>[_probe|_lowest_sigma], restarts<k>_probe|lowest_sigma), "
    "all, or '' (only the summary and plot)",
    flag_values=f,
  )
  flags.DEFINE_string(
    "variance",
    "learned_range",
    "reverse-step std of every pass: learned_range (method 3.4), fixed_small, fixed_large",
    flag_values=f,
  )
  flags.DEFINE_float(
    "alpha", None, "stochasticity of every pass (0.5); labels get ',alpha<a>'", flag_values=f
  )
  flags.DEFINE_float(
    "temperature",
    1.0,
    "multiplies every stochastic step's std; labels get ',T<t>' unless 1",
    flag_values=f,
  )
  flags.DEFINE_enum(
    "doubt",
    "model",
    pretrained.DOUBTS,
    "the regions' doubt (order, selector, picks): the denoiser's sigma, the typicality of its "
    "clean estimates (a latent model's shipped mixture, ipr_jax.typicality) or the manifest's "
    "recommended_doubt; labels get ',typicality' when it is used",
    flag_values=f,
  )
  flags.DEFINE_string("out", "docs/results/sudoku_symbolic/sudoku_budget", "prefix", flag_values=f)


def main(argv=None):
  argv = sys.argv[1:] if argv is None else list(argv)
  args = common.parse_flags(define_flags, argv, "experiments.studies.sudoku_budget", __doc__)
  methods = METHODS if args.methods == "all" else tuple(m for m in args.methods.split(",") if m)
  t0 = time.time()
  model = args.model or DEFAULT_MODEL[args.benchmark]
  try:
    apply, params, _, run = shipped.open_model(args.benchmark, model, args.seed, doubt=args.doubt)
  except ValueError as e:
    raise SystemExit(str(e)) from e
  alpha = {} if args.alpha is None else {"alpha": args.alpha}  # every pass alike
  run = dataclasses.replace(
    run,
    refine=every_pass(run.refine, variance=args.variance, temperature=args.temperature, **alpha),
  )
  typical = run.plan.doubt == "typicality"  # open_model resolved "recommended"
  suffix = sampler_suffix(args.variance, args.alpha, args.temperature, typical)
  for m in methods:  # an unknown name, bad ratio or chain count fails here, before anything runs
    try:
      method_config(m, paper_config(run))
    except ValueError as e:
      raise SystemExit(f"method {m!r}: {e}") from e
  items = run.task.test_items(args.split, args.num, validation=args.validation)
  path = f"{args.out}_{args.split}{'_val' if args.validation else ''}.json"
  results = json.load(open(path)) if os.path.exists(path) else {"curves": {}, "seconds": {}}
  results.update(
    benchmark=args.benchmark,
    model=model,
    split=args.split,
    validation=args.validation,
    num=args.num,
    seed=args.seed,
    commit=common.git_commit(),
    device=common.device_name(),
    command=f"python -m experiments.studies.sudoku_budget --benchmark {args.benchmark} "
    f"--model {model} --split {args.split} --num {args.num} --seed {args.seed}"
    + (" --validation" if args.validation else ""),
  )
  results.setdefault("commands", {})
  key = jax.random.key(args.seed)
  for name in tqdm(methods, desc="methods"):
    t = time.time()
    for label, c in run_method(name, apply, params, items, run, key):
      label += suffix
      results["curves"][label] = c
      results["commands"][label] = (
        results["command"] + f" --methods {name} --variance "
        f"{args.variance}"
        + sampler_flags(args.alpha, args.temperature)
        + (" --doubt typicality" if typical else "")
      )
      print(f"{label}: valid {c['valid'][-1]:.3f} at {c['nfe'][-1]} NFE per puzzle", flush=True)
    results["seconds"][name] = round(time.time() - t, 1)
    common.write_json(path, results)  # resumable record after every method
  # the paper's 30 uniform rounds, with the papers' std where run, else with another one
  paper = next(
    (
      c
      for k, c in sorted(results["curves"].items(), key=lambda kc: "@" in kc[0])
      if k.partition("@")[0] == "ipr_uniform"
    ),
    None,
  )
  # without that curve, the paper rounds' planned NFE (the batch's largest plan: 81 unknown cells)
  nfe = paper["nfe"][-1] if paper else planned_nfe(paper_config(run), NUM_CELLS)
  if results["curves"]:
    results["paper_nfe"] = nfe
    results["at_paper_nfe"] = {k: at_nfe(c, nfe) for k, c in results["curves"].items()}
    print(f"\nvalid rate at the NFE of 30 paper rounds ({nfe} per puzzle):")
    for k, v in results["at_paper_nfe"].items():
      print(f"  {k:<40} " + ("-" if v is None else f"{v:.3f}"))
    results["plot"] = plot(results, path.removesuffix(".json") + ".png")  # _val with it
  common.write_json(path, results)
  print(f"wrote {path} in {time.time() - t0:.0f} s")
  return results


if __name__ == "__main__":
  main()
