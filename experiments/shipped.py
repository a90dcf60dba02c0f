"""The shipped offline models, by benchmark: which model each benchmark ships and the config its
task is read with; `open_model` loads one with its task (and its codec, for a latent model)."""

from __future__ import annotations

from experiments import codec, translate
from experiments.configs import mnist_sudoku, sudoku_symbolic
from ipr_jax import pretrained

# benchmark -> (its default shipped model, the get_config of the configs its models were trained
# with: a model's task is read with the config of its own variant, e.g. real-MNIST boards for a
# latent_mnist model)
MODELS = {
  "sudoku_symbolic": ("sudoku_symbolic", sudoku_symbolic.get_config),
  "mnist_sudoku": ("mnist_sudoku_latent_19k", mnist_sudoku.get_config),
}


def open_model(
  benchmark: str,
  model: str | None = None,
  seed: int = 0,
  workdir: str = "runs",
  doubt: str = "model",
):
  """(apply, params, manifest, run): shipped model `model` (default: the benchmark's) and its
  task (translate.Run, from the config of the model's variant), with the model's codec where it
  is a latent model. `doubt` as `pretrained.load`'s ("recommended": the manifest's choice).
  ValueError for an unknown benchmark, or a model of another benchmark."""
  if benchmark not in MODELS:
    raise ValueError(f"benchmarks with a shipped model: {', '.join(MODELS)}; got {benchmark!r}")
  default, get_config = MODELS[benchmark]
  model = model or default
  apply, params, manifest = pretrained.load(model, doubt=doubt)
  if manifest.get("benchmark") != benchmark:
    raise ValueError(
      f"shipped model {model!r} is a {manifest.get('benchmark')} model, not {benchmark}"
    )
  config = get_config(manifest["variant"])
  config.seed = seed
  config.eval.pretrained = model
  config.eval.doubt = pretrained.recommended_doubt(manifest) if doubt == "recommended" else doubt
  run = translate.translate(config, codec=codec.load(translate.codec_stage(config), workdir))
  return apply, params, manifest, run
