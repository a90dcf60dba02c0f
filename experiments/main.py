"""Entry point: python -m experiments.main --config experiments/configs/<bench>.py:<variant>
--workdir DIR --mode train|sample|refine|evaluate|preflight"""

from __future__ import annotations

import os
import shlex
import signal
import sys

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from experiments import common
from experiments import train as train_mod

MODES = ("train", "sample", "refine", "evaluate", "preflight")
_CONFIG = config_flags.DEFINE_config_file(
  "config", None, "experiments/configs/<bench>.py:<variant>", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "run directory (checkpoints, results)")
_MODE = flags.DEFINE_enum("mode", "train", MODES, "what to run")
# one JAX job over several processes (every mode splits its batches over all their devices;
# process 0 writes the files): name all three, or --distributed=auto where JAX
# finds them itself (Cloud TPU, SLURM)
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "processes in the job")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "this process's index, 0..N-1")
_HEARTBEAT = flags.DEFINE_integer(
  "heartbeat_timeout_s", 100, "a job whose peer is silent this long ends every process"
)
_DISTRIBUTED = flags.DEFINE_bool(
  "distributed", False, "jax.distributed.initialize() from the environment"
)
_PEAK = flags.DEFINE_float(
  "peak_tflops", None, "preflight: the accelerator's peak TFLOP/s, for time lower bounds"
)
_STOP = flags.DEFINE_integer(
  "stop_at_step",
  None,
  "end training after the checkpoint at this step (simulates a kill; resume by running again)",
)


def _unwind(signum, frame):
  del frame
  sys.exit(128 + signum)


def exit_on_sigterm():
  """SIGTERM (`kill`, a scheduler's preemption) then unwinds the run like Ctrl-C, so the grain
  data workers of training are shut down with it instead of outliving it as orphans (the last
  checkpoint stays; running the same command again resumes)."""
  signal.signal(signal.SIGTERM, _unwind)


def start_job() -> None:
  """jax.distributed.initialize from the flags (all three, or --distributed), else nothing.
  CPU processes exchange through gloo."""
  named = (_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  if any(v is not None for v in named) and not all(v is not None for v in named):
    raise app.UsageError(
      "--coordinator_address, --num_processes and --process_id go together (or --distributed)"
    )
  if not (_DISTRIBUTED.value or all(v is not None for v in named)):
    return
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  timeout = dict(heartbeat_timeout_seconds=_HEARTBEAT.value)
  if _DISTRIBUTED.value:
    jax.distributed.initialize(**timeout)
  else:
    jax.distributed.initialize(*named, **timeout)


def main(argv):
  del argv
  exit_on_sigterm()
  start_job()
  logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
  config, workdir = _CONFIG.value, _WORKDIR.value
  if config is None or workdir is None:
    raise app.UsageError("--config and --workdir are required")
  if _MODE.value == "preflight":  # compile only: no workdir written
    from experiments import preflight

    rep = preflight.measure(config)
    if common.is_writer():
      print(preflight.report(rep, _PEAK.value))
      common.write_json(os.path.join(workdir, "preflight.json"), dict(rep, peak_tflops=_PEAK.value))
    return
  if _MODE.value == "train":
    command = shlex.join(["python", "-m", "experiments.main", *sys.argv[1:]])
    train_mod.train(config, workdir, _STOP.value, command=command)  # prints its summary line
  else:
    from experiments import evaluate

    command = shlex.join(["python", "-m", "experiments.main", *sys.argv[1:]])
    results = evaluate.run(config, workdir, _MODE.value, command=command)
    if common.is_writer():
      print(evaluate.table(results, results["headline"]))
      print(f"wrote {workdir}/results.json and {', '.join(results['plots'])}")


if __name__ == "__main__":
  app.run(main)
