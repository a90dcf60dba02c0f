"""Preflight for a device you do not have: `--mode preflight` compiles (ahead of time, with
`jax.ShapeDtypeStruct` stand-ins for every batch, no data) a config's train step and one refine
call over the job's devices and reports parameter bytes, the compiled programs' memory per device
(`memory_analysis`: arguments, outputs, temporaries) and FLOPs (`cost_analysis`; for refine,
one network call's FLOPs times the calls of the whole budget with every region unknown, since the
cost analysis counts a loop body once), and, given an accelerator's peak (`--peak_tflops`), a
lower bound on a train step's and a refine call's time.

The figures come from the compiler of the backend that runs it: on CPU they are the CPU
compiler's (a GPU/TPU compiler fuses and lays out differently); FLOPs are those of the program
as written, so they carry over. Force N CPU devices with
XLA_FLAGS=--xla_force_host_platform_device_count=N to compile for N.
"""

from __future__ import annotations

import dataclasses
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from experiments import common, tables, train, translate
from ipr_jax import refine, sampling, training


def _spec(shape, dtype, mesh, batched: bool):
  spec = PartitionSpec("data") if batched else PartitionSpec()
  return jax.ShapeDtypeStruct(shape, dtype, sharding=NamedSharding(mesh, spec))


def _cost(compiled) -> dict:
  """FLOPs and bytes per device of a compiled program."""
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else (cost or {})
  mem = compiled.memory_analysis()
  per_device = {
    k: int(getattr(mem, f"{k}_size_in_bytes", 0) or 0)
    for k in ("argument", "output", "temp", "generated_code")
  }
  return {"flops": float(cost.get("flops", 0.0)), "bytes": per_device}


def measure(config) -> dict:
  """The preflight report of `config` (pixel-space configs: a latent one needs its codec)."""
  if translate.codec_stage(config) is not None:
    raise ValueError("preflight compiles pixel-space configs; a latent config needs its codec")
  run = translate.translate(config)
  devices = common.job_devices() or jax.local_devices()
  mesh = training.data_mesh(devices)
  apply, optimizer, state = train.build_state(run)
  param_bytes = int(sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state.params)))
  state_spec = jax.tree.map(lambda a: _spec(a.shape, a.dtype, mesh, False), state)
  example = run.task.train_stream(run.seed, 1).batch(0)  # one item: only its shapes are used
  b = run.loop.batch_size
  batch_spec = {
    k: _spec((b, *np.shape(v)[1:]), np.asarray(v).dtype, mesh, True) for k, v in example.items()
  }
  key_spec = jax.ShapeDtypeStruct((), jax.random.key(0).dtype)
  step = training.make_train_step(
    apply,
    optimizer,
    run.task.grid,
    run.time_sampler,
    run.loss,
    ema_decay=run.optim.ema_decay,
    mesh=mesh if len(devices) > 1 else None,
  )
  t0 = time.time()
  train_cost = _cost(step.lower(state_spec, batch_spec, key_spec).compile())
  train_s = time.time() - t0
  n = run.plan.batch_size
  n += -n % len(devices)  # refine pads a batch to a multiple of the devices
  shape = (n, run.model.height, run.model.width, run.model.channels)
  cfg = dataclasses.replace(run.refine, selector=run.selectors[0])
  fn = jax.jit(
    functools.partial(refine._refine, apply, run.task.metric_fn, cfg),  # the refine program
  )
  params_spec = jax.tree.map(lambda a: _spec(a.shape, a.dtype, mesh, False), state.ema_params)
  metric_spec = jax.tree.map(
    lambda a: _spec(np.shape(a), jnp.asarray(a).dtype, mesh, False), run.task.metric_params
  )
  t0 = time.time()
  refine_cost = _cost(
    fn.lower(
      params_spec,
      metric_spec,
      key_spec,
      _spec((n,), jnp.int32, mesh, True),
      _spec(shape, jnp.float32, mesh, True),
      _spec((n, run.task.grid.num_regions), jnp.bool_, mesh, True),
    ).compile()
  )
  refine_s = time.time() - t0
  # XLA's cost analysis counts a loop body once, so the refine program's FLOPs are one step of
  # each scan: the call's FLOPs are the network's per call times the calls of a full budget
  net = (
    jax.jit(apply)
    .lower(
      params_spec,
      _spec(shape, jnp.float32, mesh, True),
      _spec((n, run.task.grid.num_regions), jnp.float32, mesh, True),
    )
    .compile()
  )
  per_call = _cost(net)["flops"]
  r = run.task.grid.num_regions
  calls = sampling.max_steps(r, cfg.initial) + sum(
    sampling.max_steps(int(m[r]), cfg.ipr) for m in refine.m_tables(cfg, r)
  )
  refine_cost["flops"] = per_call * calls
  return {
    "benchmark": run.benchmark,
    "variant": run.variant,
    "devices": len(devices),
    "device": common.device_name(),
    "param_bytes": param_bytes,
    "train": {"batch": b, "compile_s": round(train_s, 1), **train_cost},
    "refine": {
      "batch": n,
      "rounds": cfg.rounds,
      "compile_s": round(refine_s, 1),
      "network_calls": int(calls),  # every region eligible: the largest plan
      "flops_per_call": per_call,
      **refine_cost,
    },
  }


def report(rep: dict, peak_tflops: float | None = None) -> str:
  """The report as a table; with the accelerator's peak TFLOP/s, the time lower bounds."""
  gib = lambda x: f"{x / 2**30:.2f}"
  rows = []
  for name in ("train", "refine"):
    r = rep[name]
    mem = r["bytes"]
    flops = r["flops"]
    bound = f"{flops / (peak_tflops * 1e12) * 1e3:.1f}" if peak_tflops else "-"
    rows.append(
      [
        f"{name} (batch {r['batch']}" + (f", {r['rounds']} rounds)" if name == "refine" else ")"),
        gib(mem["argument"]),
        gib(mem["output"]),
        gib(mem["temp"]),
        f"{flops / 1e12:.3f}",
        bound,
      ]
    )
  head = (
    f"{rep['benchmark']}:{rep['variant']} on {rep['devices']} x {rep['device']}; params "
    f"{rep['param_bytes'] / 2**20:.1f} MiB (float32); memory per device from this backend's "
    "compiler"
  )
  header = ["program", "args GiB", "outputs GiB", "temp GiB", "TFLOP", "ms at peak (lower bound)"]
  return head + "\n" + tables.render(header, rows, style="text")
