"""Refine speed, measured side by side in one run: compiled `refine` against the reference design.

    python -m experiments.studies.refine_speed                  # paper size: for a GPU
    python -m experiments.studies.refine_speed --size small     # a few minutes on 2 CPU cores

For the MNIST-Sudoku UNet (paper: 252x252x1, 81 regions, method 6.2 widths) and the Sudoku region
transformer (paper: width 256, 8 layers), untrained (speed does not depend on the weights), on
hard held-out puzzles, per compute dtype and batch: compile time (first call minus a steady
call), ms per batched network call, refine wall time, NFE, overhead = wall / (NFE x call),
samples/s. Then the reference design at batch 1 (`ipr_jax.host_loop`: one sample at a time, step
loop, schedule matrix and selection in Python, one jitted call per step) with the same
network and dtype, and the ratio of refine's best samples/s to it. One JSON line per
measurement (`--out`), a table at the end.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from experiments import common, tables, translate
from experiments.configs import sudoku_symbolic
from ipr_jax import denoisers, host_loop, refine
from ipr_jax.data import sudoku

SIZES = {
  # name: rounds, and per model (denoiser config or transformer size name, batches)
  "paper": dict(
    rounds=3,
    models={
      "unet": (
        denoisers.UNetConfig(
          252,
          252,
          1,
          28,
          widths=(128, 128, 256, 256, 512, 512),
          attention=(False,) * 4 + (True, True),
          dropout=0.0,
        ),
        (1, 16, 64),
      ),
      "transformer": ("paper", (1, 16, 64)),
    },
  ),  # sudoku_symbolic:paper (width 256, 8 layers)
  # CPU: the image UNet shrunk to 36x36 (4x4-pixel cells) and small batches, the transformer
  # at the shipped cpu size
  "small": dict(
    rounds=1,
    models={
      "unet": (
        denoisers.UNetConfig(
          36,
          36,
          1,
          4,
          widths=(16, 32),
          attention=(False, True),
          groups=8,
          head_channels=16,
          dropout=0.0,
        ),
        (1, 8),
      ),
      "transformer": ("cpu", (1, 16, 64)),
    },
  ),
}


def puzzles(cfg, num: int):
  """Hard held-out puzzles as the model's input: symbolic one-hot, or a digit-free image of the
  same region grid (speed does not depend on the pixels)."""
  boards, givens = sudoku.test_set("hard", num)
  if cfg.channels == 9:
    return jnp.asarray(sudoku.to_symbolic(boards)), jnp.asarray(~givens)
  x = jax.random.uniform(jax.random.key(0), (num, cfg.height, cfg.width, cfg.channels), minval=-1)
  return x, jnp.asarray(~givens)


def call_ms(apply, params, x, repeats: int = 10) -> float:
  net = jax.jit(apply)
  t = jnp.full((x.shape[0], 81), 0.5)
  jax.block_until_ready(net(params, x, t))
  return 1e3 * float(np.median([common.wall_s(lambda: net(params, x, t)) for _ in range(repeats)]))


def measure(model: str, cfg, dtype: str, batches, rounds: int, reference: bool):
  cfg = dataclasses.replace(cfg, dtype=dtype)
  apply, params = denoisers.build(cfg, jax.random.key(0))
  rcfg = refine.RefineConfig(rounds=rounds)  # its defaults are the method 6.3 Sudoku settings
  x_all, elig_all = puzzles(cfg, max(batches))
  rows = []
  for b in batches:
    x, elig = x_all[:b], elig_all[:b]
    run = lambda seed: refine.refine(apply, params, jax.random.key(seed), x, elig, rcfg)
    first = common.wall_s(lambda: run(1).x)
    t0 = time.perf_counter()
    res = jax.block_until_ready(run(2))
    wall = time.perf_counter() - t0
    nfe = int(np.sum(res.nfe))
    call = call_ms(apply, params, x)
    rows.append(
      dict(
        model=model,
        dtype=dtype,
        batch=b,
        compile_s=round(first - wall, 2),
        call_ms=round(call, 3),
        refine_s=round(wall, 3),
        nfe=nfe,
        overhead=round(wall / (nfe * call * 1e-3), 3),
        samples_per_s=round(b / wall, 4),
        device=common.device_name(),
      )
    )
  if reference:
    net = jax.jit(apply)
    host_loop.refine_one(net, params, 99, x_all[:1], elig_all[:1], rcfg)  # compile its jits
    t0 = time.perf_counter()
    _, nfe = host_loop.refine_one(net, params, 0, x_all[:1], elig_all[:1], rcfg)
    wall = time.perf_counter() - t0
    best = max(r["samples_per_s"] for r in rows)
    rows.append(
      dict(
        model=model,
        dtype=dtype,
        batch=1,
        design="reference (host loop)",
        refine_s=round(wall, 3),
        nfe=int(nfe),
        samples_per_s=round(1 / wall, 4),
        speedup_of_refine=round(best * wall, 2),
        device=common.device_name(),
      )
    )
  return rows


def table(rows) -> str:
  header = ["model", "dtype", "design", "batch", "compile s", "call ms", "wall s", "NFE"]
  header += ["overhead", "samples/s", "refine/ref"]
  cells = [
    [
      r["model"],
      r["dtype"],
      "reference" if "design" in r else "refine",
      r["batch"],
      r.get("compile_s", ""),
      r.get("call_ms", ""),
      r["refine_s"],
      r["nfe"],
      r.get("overhead", ""),
      r["samples_per_s"],
      r.get("speedup_of_refine", ""),
    ]
    for r in rows
  ]
  return tables.render(header, cells, style="text")


def define_flags(f):
  flags.DEFINE_enum("size", "paper", tuple(SIZES), "model and puzzle sizes", flag_values=f)
  flags.DEFINE_list("models", ["unet", "transformer"], "denoisers measured", flag_values=f)
  flags.DEFINE_list("dtypes", ["float32", "bfloat16"], "compute dtypes", flag_values=f)
  flags.DEFINE_list("batches", None, "batch sizes (default: the size's per model)", flag_values=f)
  flags.DEFINE_integer("rounds", None, "IPR rounds (default: the size's)", flag_values=f)
  flags.DEFINE_bool("no_reference", False, "skip the host-loop design", flag_values=f)
  flags.DEFINE_string("out", None, "append JSON lines here", flag_values=f)


def main(argv=None):
  argv = sys.argv[1:] if argv is None else list(argv)
  args = common.parse_flags(define_flags, argv, "experiments.studies.refine_speed", __doc__)
  size = SIZES[args.size]
  rounds = size["rounds"] if args.rounds is None else args.rounds
  print(
    f"device: {common.device_name()}  size: {args.size}  rounds: {rounds}  hard Sudoku "
    "puzzles, initial 3 steps/cell, IPR 10 steps/cell overlap 0.8, ratio 0.25",
    flush=True,
  )
  rows = []
  for model in args.models:
    cfg, batches = size["models"][model]
    if isinstance(cfg, str):  # the sudoku_symbolic config variant's transformer
      cfg = translate.translate(sudoku_symbolic.get_config(cfg)).model
    batches = tuple(int(b) for b in args.batches) if args.batches else batches
    for dtype in args.dtypes:
      for row in measure(model, cfg, dtype, batches, rounds, not args.no_reference):
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.out:
          with open(args.out, "a") as f:
            f.write(json.dumps(row) + "\n")
  print(table(rows))


if __name__ == "__main__":
  main()
