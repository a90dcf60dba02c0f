"""Speed against the field's framework, side by side in one run: spatialreasoners (1.0.5,
PyTorch, eager, its ScheduledInferenceSampler with the lowest-sigma-first sequential schedule)
against our compiled `sample` and `refine`. Needs the optional extra (`pip install -e ".[peers]"`).

    python -m experiments.studies.peer_speed --size small     # 2 CPU cores: about 15 minutes
    python -m experiments.studies.peer_speed                  # paper size (252x252 UNet): a GPU

The same UNet (our params loaded into the peer's, `experiments.peers`; untrained: speed does not
depend on the weights), float32, the same hard held-out puzzles (their givens as the known
regions, the same initial noise), the same sampler settings (3 steps per region, no overlap,
alpha 0.5, learned-range variance; the peer's max_steps = our M for the batch's largest number
of unknown regions, so both run the same number of network calls). Per batch size:
- one network call at a pass's first step: ms (median of repeats), ours jitted, the peer's
  model forward;
- one sampling pass: wall time, NFE, ms per network call inside the loop, samples/s;
- the paper's IPR budget (`--rounds`, default 30 hard rounds): our `refine` against the peer's
  nearest equivalent, repeated sampling to the same NFE (passes = ceil(refine NFE / pass NFE);
  every pass costs the same, so its time is the passes times the mean of `--peer_passes` timed
  passes (default: all of them; 0: the sampling pass above)).
Our compile time is reported apart and excluded from the walls. One JSON line per measurement
(`--out`), and the table of ratios (ours / peer samples/s) at the end.
"""

from __future__ import annotations

import json
import math
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from experiments import common, peers, tables
from ipr_jax import denoisers, refine, sampling, schedules
from ipr_jax.data import sudoku

SIZES = {
  # the paper's MNIST-Sudoku UNet (method 6.2), for a GPU
  "paper": dict(
    unet=denoisers.UNetConfig(
      252,
      252,
      1,
      28,
      widths=(128, 128, 256, 256, 512, 512),
      attention=(False,) * 4 + (True, True),
      dropout=0.0,
    ),
    batches=(1, 16, 64),
  ),
  # the same 9x9 region grid at 36x36 (4x4-pixel cells), two levels of width 32
  "small": dict(
    unet=denoisers.UNetConfig(
      36,
      36,
      1,
      4,
      widths=(32, 32),
      attention=(False, True),
      num_blocks=1,
      time_dim=32,
      head_channels=32,
      dropout=0.0,
    ),
    batches=(1, 8),
  ),
}
INITIAL = sampling.SamplerConfig(steps_per_patch=3, overlap=0.0, alpha=0.5)


def puzzles(cfg: denoisers.UNetConfig, num: int, seed: int = 0):
  """Hard held-out puzzles: known bool[num, 81] from their givens, digit-free known pixels and
  initial noise f32[num, H, W, C] (speed does not depend on the pixels)."""
  _, givens = sudoku.test_set("hard", num)
  shape = (num, cfg.height, cfg.width, cfg.channels)
  k1, k2 = jax.random.split(jax.random.key(seed))
  z = np.asarray(jax.random.normal(k1, shape))
  values = np.asarray(jax.random.uniform(k2, shape, minval=-1.0))
  return np.asarray(givens), z, values


def call_ms(apply, params, model, cfg, known, repeats: int) -> tuple[float, float]:
  """(ours, peer) ms of one batched network call at a pass's first step (t = 1 on the unknown
  regions, 0 on the givens; the peer's time embedding costs more the more distinct noise levels
  a call holds, so the loop's ms per step is the figure to compare), median of `repeats`."""
  import torch

  b, r = known.shape
  x = jnp.zeros((b, cfg.height, cfg.width, cfg.channels))
  t = jnp.asarray(~known, jnp.float32)
  net = jax.jit(apply)
  jax.block_until_ready(net(params, x, t))
  ours = np.median([common.wall_s(lambda: net(params, x, t)) for _ in range(repeats)])
  z_vars = torch.zeros(b, 1, r, cfg.channels * cfg.patch**2)
  t_vars = torch.as_tensor(np.asarray(t))[:, None]
  with torch.no_grad():
    model(z_vars, t_vars, sample=True, use_ema=False)
    peer = np.median(
      [
        common.wall_s(lambda: model(z_vars, t_vars, sample=True, use_ema=False))
        for _ in range(repeats)
      ]
    )
  return 1e3 * float(ours), 1e3 * float(peer)


def _compared(b: int, ours_wall: float, peer_wall: float, ours_nfe: int, peer_nfe: int) -> dict:
  """Both sides' wall, NFE, ms per step and samples/s for a batch of b, and the ratio."""
  return dict(
    ours_wall_s=round(ours_wall, 3),
    peer_wall_s=round(peer_wall, 3),
    ours_nfe=ours_nfe,
    peer_nfe=peer_nfe,
    ours_ms_per_step=round(1e3 * ours_wall / ours_nfe, 3),
    peer_ms_per_step=round(1e3 * peer_wall / peer_nfe, 3),
    ours_samples_per_s=round(b / ours_wall, 4),
    peer_samples_per_s=round(b / peer_wall, 4),
    ratio=round(peer_wall / ours_wall, 2),
  )


def measure(cfg, batches, rounds: int, peer_passes, repeats: int):
  apply, params = denoisers.build(cfg, jax.random.key(0))
  model = peers.denoising_model(cfg)
  peers.load_params(model, params, cfg)
  known_all, z_all, values_all = puzzles(cfg, max(batches))
  rcfg = refine.RefineConfig(rounds=rounds, initial=INITIAL)  # IPR: the method 6.3 defaults
  device, commit = common.device_name(), common.git_commit()
  rows = []
  for b in batches:
    known, z, values = known_all[:b], z_all[:b], values_all[:b]
    ours_call, peer_call = call_ms(apply, params, model, cfg, known, repeats)
    base = dict(batch=b, device=device, torch_threads=_torch_threads(), commit=commit)

    # one sequential pass
    args = (jnp.asarray(z), jnp.asarray(known), jnp.asarray(values), INITIAL)
    run = lambda seed: sampling.sample(apply, params, jax.random.key(seed), *args)
    first = common.wall_s(lambda: run(1))
    t0 = time.perf_counter()
    nfe = int(jax.block_until_ready(run(2)).nfe)
    ours_wall = time.perf_counter() - t0
    n_max = int((~known).sum(axis=1).max())
    max_steps = schedules.sequential_plan(n_max, INITIAL.steps_per_patch, INITIAL.overlap)
    sampler = peers.sequential_sampler(
      cfg, max_steps.total_steps, INITIAL.overlap, INITIAL.alpha, INITIAL.temperature
    )
    t0 = time.perf_counter()
    _, steps = peers.sample(model, sampler, z, known, values)
    peer_wall = pass_wall = time.perf_counter() - t0
    peer_nfe = int(steps.max())
    rows.append(
      dict(
        base,
        task="sample",
        ours_compile_s=round(first - ours_wall, 2),
        ours_call_ms=round(ours_call, 3),
        peer_call_ms=round(peer_call, 3),
        **_compared(b, ours_wall, peer_wall, nfe, peer_nfe),
      )
    )
    print(json.dumps(rows[-1]), flush=True)

    # the paper's IPR budget: refine against repeated peer sampling at the same NFE
    elig = jnp.asarray(~known)
    go = lambda seed: refine.refine(apply, params, jax.random.key(seed), jnp.asarray(z), elig, rcfg)
    first = common.wall_s(lambda: go(1).x)
    t0 = time.perf_counter()
    res = jax.block_until_ready(go(2))
    ours_wall = time.perf_counter() - t0
    budget = int(np.sum(res.nfe))
    passes = math.ceil(budget / peer_nfe)
    ran = passes if peer_passes is None else min(passes, peer_passes)
    t0 = time.perf_counter()
    for p in range(ran):
      z_p = np.asarray(jax.random.normal(jax.random.key(100 + p), z.shape))
      peers.sample(model, sampler, z_p, known, values)
    peer_wall = (time.perf_counter() - t0) * passes / ran if ran else pass_wall * passes
    rows.append(
      dict(
        base,
        task=f"refine {rounds} rounds vs repeated sampling",
        ours_compile_s=round(first - ours_wall, 2),
        peer_passes=passes,
        peer_passes_timed=ran,
        **_compared(b, ours_wall, peer_wall, budget, passes * peer_nfe),
      )
    )
    print(json.dumps(rows[-1]), flush=True)
  return rows


def _torch_threads() -> int:
  import torch

  return torch.get_num_threads()


def table(rows) -> str:
  header = ["task", "batch", "NFE ours / peer", "call ms ours / peer", "ms per step ours / peer"]
  header += ["samples/s ours", "samples/s peer", "ours / peer"]
  cells = [
    [
      r["task"],
      r["batch"],
      f"{r['ours_nfe']} / {r['peer_nfe']}",
      f"{r['ours_call_ms']} / {r['peer_call_ms']}" if "ours_call_ms" in r else "",
      f"{r['ours_ms_per_step']} / {r['peer_ms_per_step']}",
      r["ours_samples_per_s"],
      r["peer_samples_per_s"],
      f"{r['ratio']}x",
    ]
    for r in rows
  ]
  return tables.render(header, cells, style="text")


def define_flags(f):
  flags.DEFINE_enum("size", "paper", tuple(SIZES), "UNet and batch sizes", flag_values=f)
  flags.DEFINE_list("batches", None, "batch sizes (default: the size's)", flag_values=f)
  flags.DEFINE_integer("rounds", 30, "IPR rounds of the refine budget", flag_values=f)
  flags.DEFINE_integer(
    "peer_passes",
    None,
    "peer passes to time at the budget (default: all; 0: reuse the sampling pass)",
    flag_values=f,
  )
  flags.DEFINE_integer("repeats", 5, "repeats of the single network call", flag_values=f)
  flags.DEFINE_string("out", None, "append JSON lines here", flag_values=f)


def main(argv=None):
  argv = sys.argv[1:] if argv is None else list(argv)
  args = common.parse_flags(define_flags, argv, "experiments.studies.peer_speed", __doc__)
  try:
    import spatialreasoners  # noqa: F401
  except ImportError:
    raise SystemExit(peers.EXTRA) from None
  size = SIZES[args.size]
  batches = tuple(int(b) for b in args.batches) if args.batches else size["batches"]
  if min(batches) < 1:
    raise SystemExit(f"--batches must be >= 1, got {batches}")
  print(
    f"device: {common.device_name()}  size: {args.size}  hard Sudoku puzzles, float32, "
    f"3 steps per region, IPR budget {args.rounds} rounds",
    flush=True,
  )
  rows = measure(size["unet"], batches, args.rounds, args.peer_passes, args.repeats)
  if args.out:
    with open(args.out, "a") as f:
      for row in rows:
        f.write(json.dumps(row) + "\n")
  print(table(rows))


if __name__ == "__main__":
  main()
