"""The latent-codec ablation (docs/latent_sudoku.md): which codec choices make image Sudoku in
latent space work, one JSON line per row.

    python -m experiments.studies.latent_ablation --rows d4,d8,d16 --srm_steps 0 --out runs/latent_ablation

Every row is the `mnist_sudoku.py:latent_cpu` config plus the row's codec overrides. Its codec
is trained into OUT/<row>/codec (reused when there) and scored by the digit classifier on
reconstructed held-out digits against the originals, on the test bank's digits, and by the
Sudoku ceiling (held-out solved boards still valid after a round trip through the codec). With `--srm_steps N > 0` the row also
trains the latent denoiser for N steps (OUT/<row>, resumable) and refines `--puzzles` held-out
hard puzzles with the recommended settings (fixed_small reverse std, uncertainty selector,
ratio 0.5, `--rounds` rounds): valid rate at round 0 and after the last round. Rows that
already have a line in OUT/results.jsonl for these settings are skipped; `--table` prints the
markdown table and stops. CPU minutes per row are the codec's and the denoiser's training plus
scoring time, measured here.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import numpy as np
from absl import app, flags, logging

from experiments import codec, common, evaluate, tables, train, translate
from experiments.configs import mnist_sudoku
from ipr_jax import pretrained, refine

ROWS = {
  "d4": {"latent_dim": 4},
  "d8": {"latent_dim": 8},
  "d16": {},  # the shipped codec (latent_cpu)
  "d32": {"latent_dim": 32},
  "d16_no_noise": {"latent_noise": 0.0},
  "d16_noise0.3": {"latent_noise": 0.3},
  "d16_no_decoder_stage": {"decoder_steps": 0},
  "d16_no_norm": {"normalise": False},
}
_ROWS = flags.DEFINE_list("rows", list(ROWS), "rows to run, in order")
_OUT = flags.DEFINE_string("out", "runs/latent_ablation", "study directory")
_SRM_STEPS = flags.DEFINE_integer("srm_steps", 0, "denoiser training steps per row (0: codec only)")
_PUZZLES = flags.DEFINE_integer("puzzles", 100, "held-out hard puzzles per row")
_ROUNDS = flags.DEFINE_integer("rounds", 16, "IPR rounds (uncertainty selector, ratio 0.5)")
_TABLE = flags.DEFINE_bool("table", False, "print the markdown table of OUT/results.jsonl and stop")


def row_config(name: str, srm_steps: int):
  if name not in ROWS:
    raise ValueError(f"unknown row {name!r}; rows: {list(ROWS)}")
  config = mnist_sudoku.get_config("latent_cpu")
  config.model.codec.update(ROWS[name])
  if srm_steps:
    config.train.update(steps=srm_steps, eval_every=srm_steps)
    config.optim.decay_steps = srm_steps
  return config


def recommended(rounds: int) -> refine.RefineConfig:
  """The symbolic model's recommended refine settings (fixed_small std, uncertainty selector,
  ratio 0.5) for `rounds` rounds: those the latent rows are scored with."""
  shipped = pretrained.recommended(pretrained.manifest("sudoku_symbolic"))
  return dataclasses.replace(shipped, rounds=rounds)


def score(config, workdir: str, puzzles: int, rounds: int) -> dict:
  """Valid rate at round 0 and after `rounds` recommended rounds on `puzzles` hard puzzles."""
  run = translate.translate(config, codec=codec.load(translate.codec_stage(config), workdir))
  apply, params, _ = evaluate.load_params(run, workdir)
  items = run.task.test_items("hard", puzzles)
  m, nfe, _ = evaluate.run_refine(
    apply,
    params,
    items,
    recommended(rounds),
    run.task,
    run.key("evaluation"),
    run.plan.batch_size,
  )
  valid = m["valid"].mean(axis=1)
  return {"hard_round0": float(valid[0]), "hard_refined": float(valid[-1]), "nfe": int(np.sum(nfe))}


def run_row(name: str, out: str, srm_steps: int, puzzles: int, rounds: int) -> dict:
  config, workdir = row_config(name, srm_steps), os.path.join(out, name)
  t0 = time.time()
  stage = translate.codec_stage(config)
  codec.train(stage, workdir)
  info = json.load(open(os.path.join(workdir, codec.FOLDER, "manifest.json")))["codec"]
  row = {
    "row": name,
    "overrides": ROWS[name],
    "latent_dim": stage.recipe.latent_dim,
    "codec_accuracy_original": info["accuracy_original"],
    "codec_accuracy_reconstructed": info["accuracy_reconstructed"],
    "codec_bank_accuracy_reconstructed": info["bank_accuracy_reconstructed"],
    "codec_board_ceiling": info["board_ceiling"],
    "codec_minutes": info["train_wall_s"] / 60,
    "srm_steps": srm_steps,
    "puzzles": puzzles,
    "rounds": rounds,
  }
  if srm_steps:
    t1 = time.time()
    train.train(config, workdir)
    row["srm_minutes"] = (time.time() - t1) / 60
    t2 = time.time()
    row.update(score(config, workdir, puzzles, rounds))
    row["score_minutes"] = (time.time() - t2) / 60
  row.update(
    wall_minutes=(time.time() - t0) / 60, commit=common.git_commit(), device=common.device_name()
  )
  return row


def table(rows: list) -> str:
  header = [
    "row",
    "d",
    "held-out digits read right: original / reconstructed",
    "test bank reconstructed",
    "boards valid after a round trip",
    "SRM steps",
    "hard valid round 0 -> refined (NFE)",
    "CPU min (codec + SRM + scoring)",
  ]
  cells = []
  for r in rows:
    srm = (
      f"{100 * r['hard_round0']:.0f}% -> {100 * r['hard_refined']:.0f}% ({r['nfe']})"
      if r["srm_steps"]
      else "-"
    )
    minutes = r["codec_minutes"] + r.get("srm_minutes", 0) + r.get("score_minutes", 0)
    cells.append(
      [
        r["row"],
        r["latent_dim"],
        f"{100 * r['codec_accuracy_original']:.2f}% / "
        f"{100 * r['codec_accuracy_reconstructed']:.2f}%",
        f"{100 * r['codec_bank_accuracy_reconstructed']:.1f}%",
        f"{100 * r['codec_board_ceiling']:.1f}%",
        r["srm_steps"] or "-",
        srm,
        f"{minutes:.1f}",
      ]
    )
  return tables.render(header, cells)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  path = os.path.join(_OUT.value, "results.jsonl")
  done = [json.loads(l) for l in open(path)] if os.path.exists(path) else []
  if _TABLE.value:
    print(table(done))
    return
  for name in _ROWS.value:
    row_config(name, 0)  # an unknown row fails before any training
  for name in _ROWS.value:
    if any(
      r["row"] == name
      and r["srm_steps"] == _SRM_STEPS.value
      and r["puzzles"] == _PUZZLES.value
      and r["rounds"] == _ROUNDS.value
      for r in done
    ):
      print(f"{name}: already in {path}")
      continue
    row = run_row(name, _OUT.value, _SRM_STEPS.value, _PUZZLES.value, _ROUNDS.value)
    done.append(row)
    os.makedirs(_OUT.value, exist_ok=True)
    with open(path, "a") as f:
      f.write(json.dumps(row) + "\n")
    print(table([row]))
  print(table(done))


if __name__ == "__main__":
  app.run(main)
