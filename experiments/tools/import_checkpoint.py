"""Import a published PyTorch SRM/IPR checkpoint into a run directory, ready for the CLI.

    python -m experiments.tools.import_checkpoint --ckpt ms1000_28/last.ckpt \
        --config experiments/configs/mnist_sudoku.py:paper --out runs/ms_paper
    python -m experiments.main --config experiments/configs/mnist_sudoku.py:paper \
        --workdir runs/ms_paper --mode refine

Writes OUT/imported/params.npz + manifest.json (the `pretrained` format: the denoiser config,
the source file, its sha256, EMA or online weights, the checkpoint's global step). `--mode
sample|refine|evaluate` on OUT then uses these weights (no training). `--hydra_config` (the
reference run's `.hydra/config.yaml`, if you have it) is checked against the config's model.
Nothing is downloaded: fetch the `.ckpt` yourself.
"""

from __future__ import annotations

import dataclasses
import os

import jax
from absl import app, flags
from ml_collections import config_flags

from experiments import common, evaluate, translate
from ipr_jax import denoisers, importers, pretrained

_CONFIG = config_flags.DEFINE_config_file(
  "config", None, "experiment config (a UNet model)", lock_config=True
)
_CKPT = flags.DEFINE_string("ckpt", None, "Lightning .ckpt or state-dict .npz of the reference")
_OUT = flags.DEFINE_string("out", None, "run directory to write OUT/imported into")
_HYDRA = flags.DEFINE_string("hydra_config", None, "the reference run's config.yaml (optional)")
_ONLINE = flags.DEFINE_bool("online", False, "import the online weights instead of the EMA ones")


def check_hydra(path: str, model) -> None:
  """ValueError listing the fields where the reference run's config differs from `model`."""
  frame = {f: getattr(model, f) for f in ("height", "width", "channels", "patch")}
  theirs = importers.unet_config_from_hydra(path, **frame)
  diff = [
    f"{f.name}: config {getattr(model, f.name)!r} vs {path} {getattr(theirs, f.name)!r}"
    for f in dataclasses.fields(model)
    if getattr(model, f.name) != getattr(theirs, f.name) and f.name != "dropout"
  ]  # dropout is off at sampling: not an architecture difference
  if diff:
    raise ValueError(
      "the reference run's model differs from the experiment config; set the "
      "config's model keys (--config.model.unet.<key>=...) to match:\n  " + "\n  ".join(diff)
    )


def run(config, ckpt: str, out: str, hydra_config: str | None = None, ema: bool = True) -> str:
  """Import `ckpt` for `config` into out/imported; returns that folder."""
  run_ = translate.translate(config)
  model = run_.model
  if not isinstance(model, denoisers.UNetConfig):
    raise ValueError(
      f"the published checkpoints are UNets, but this config's model.kind is "
      f"{denoisers.kind_of(model)!r}: use a paper variant or --config.model.kind=unet"
    )
  if hydra_config:
    check_hydra(hydra_config, model)
  _, params = importers.load_srm_checkpoint(ckpt, model, ema=ema)
  manifest = {
    "name": evaluate.IMPORTED,
    "benchmark": run_.benchmark,
    "variant": run_.variant,
    "source": os.path.abspath(ckpt),
    "source_sha256": pretrained.sha256(ckpt),
    "weights": "ema" if ema else "online",
    "commit": common.git_commit(),
    "num_params": int(sum(x.size for x in jax.tree.leaves(params))),
  }
  return pretrained.save(evaluate.IMPORTED, params, denoisers.to_dict(model), manifest, root=out)


def main(argv):
  del argv
  if _CONFIG.value is None or not _CKPT.value or not _OUT.value:
    raise app.UsageError("--config, --ckpt and --out are required")
  folder = run(_CONFIG.value, _CKPT.value, _OUT.value, _HYDRA.value, ema=not _ONLINE.value)
  print(
    f"wrote {folder}; now: python -m experiments.main --config <the same config> "
    f"--workdir {_OUT.value} --mode refine"
  )


if __name__ == "__main__":
  app.run(main)
