"""Entry point: python -m experiments.main --config experiments/configs/<bench>.py:<variant>
--workdir DIR --mode train|sample|refine|evaluate"""

from __future__ import annotations

import shlex
import signal
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from experiments import train as train_mod

MODES = ("train", "sample", "refine", "evaluate")
_CONFIG = config_flags.DEFINE_config_file(
  "config", None, "experiments/configs/<bench>.py:<variant>", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "run directory (checkpoints, results)")
_MODE = flags.DEFINE_enum("mode", "train", MODES, "what to run")
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


def main(argv):
  del argv
  exit_on_sigterm()
  logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
  config, workdir = _CONFIG.value, _WORKDIR.value
  if config is None or workdir is None:
    raise app.UsageError("--config and --workdir are required")
  if _MODE.value == "train":
    command = shlex.join(["python", "-m", "experiments.main", *sys.argv[1:]])
    train_mod.train(config, workdir, _STOP.value, command=command)  # prints its summary line
  else:
    from experiments import evaluate

    command = shlex.join(["python", "-m", "experiments.main", *sys.argv[1:]])
    results = evaluate.run(config, workdir, _MODE.value, command=command)
    print(evaluate.table(results, results["headline"]))
    print(f"wrote {workdir}/results.json and {', '.join(results['plots'])}")


if __name__ == "__main__":
  app.run(main)
