"""Ship a trained model: copy the EMA params of DIR/best (or, with --config.eval.checkpoint=last,
of the last checkpoint) into ipr_jax/assets/NAME with a manifest (training record and the
config's recommended sampling/refine settings); a latent config's codec (DIR/codec) goes with it,
with the typicality mixture of its clean latents (`experiments.tools.ship_mixture`).

    python -m experiments.tools.export_model --config experiments/configs/sudoku_symbolic.py:cpu \
        --workdir runs/sudoku_cpu --name sudoku_symbolic_cpu
"""

from __future__ import annotations

import dataclasses
import json
import os

import jax
from absl import app, flags
from ml_collections import config_flags

from experiments import codec, common, evaluate, translate
from experiments.tools import ship_mixture
from ipr_jax import denoisers, pretrained

_CONFIG = config_flags.DEFINE_config_file("config", None, "experiment config", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "training run directory")
_NAME = flags.DEFINE_string("name", "sudoku_symbolic_cpu", "asset name")
_ALLOW_DIRTY = flags.DEFINE_bool(
  "allow_dirty",
  False,
  "ship from a tree with uncommitted changes "
  "(its manifest then names a commit that is not the code)",
)


def main(argv):
  del argv
  if common.git_commit().endswith("-dirty") and not _ALLOW_DIRTY.value:
    raise app.UsageError(
      "the working tree has uncommitted changes: commit them first, so the "
      "shipped manifest names the code that made it (or --allow_dirty)"
    )
  config, workdir = _CONFIG.value, _WORKDIR.value
  coder = codec.load(translate.codec_stage(config), workdir)
  run = translate.translate(config, codec=coder)
  _, params, source = evaluate.load_params(run, workdir)
  spec = denoisers.to_dict(run.model)
  if spec["kind"] == "transformer" and run.benchmark in (
    "sudoku_symbolic",
    "mnist_sudoku",
  ):  # named, not 81x81 tuples
    spec.update(
      position_ids="sudoku",
      attention_graph="sudoku_peers" if run.model.attention_graph is not None else None,
    )
  rows = [json.loads(l) for l in open(os.path.join(workdir, "metrics.jsonl"))]
  wall, last = 0.0, 0.0  # wall_s restarts at each resume: add up the segments
  for r in rows:
    wall += r["wall_s"] - (last if r["wall_s"] >= last else 0.0)
    last = r["wall_s"]
  best_path = os.path.join(workdir, "best.json")  # absent if no step cleared the chance floor
  best = json.load(open(best_path)) if os.path.exists(best_path) else None
  train_rec = json.load(open(os.path.join(workdir, "train_config.json")))
  manifest = {
    "name": _NAME.value,
    "benchmark": run.benchmark,
    "variant": run.variant,
    "config": run.record,
    "checkpoint": source,
    "steps": int(source.rstrip("/").rsplit("/", 1)[-1]),
    "best_validation": best,
    "train_wall_s": round(wall, 1),
    "train_commit": train_rec.get("commit"),
    "export_commit": common.git_commit(),
    "num_params": int(sum(x.size for x in jax.tree.leaves(params))),
    "command": train_rec.get("command")
    or (
      "python -m experiments.main --config experiments/configs/"
      f"{run.benchmark}.py:{run.variant} --workdir {workdir} --mode train"
    ),
    "train_device": train_rec.get("device"),
    # the config's round-0 and refine settings (first selector), checked by pretrained.load
    "recommended": pretrained.settings_dict(
      dataclasses.replace(run.refine, selector=run.selectors[0])
    ),
  }
  folder = pretrained.save(_NAME.value, params, spec, manifest)
  if coder is not None:
    info = pretrained.manifest(codec.FOLDER, workdir)["codec"]
    pretrained.save_codec(
      folder,
      coder[1],
      coder[0].config,
      {k: v for k, v in info.items() if k not in ("config", "sha256")},
    )
    ship_mixture.ship(_NAME.value)
  print(f"wrote {folder}")


if __name__ == "__main__":
  app.run(main)
