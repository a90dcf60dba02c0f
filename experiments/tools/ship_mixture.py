"""Add the typicality mixture (`ipr_jax.typicality`, `experiments.codec.mixture`) to a shipped
latent model: Gaussians fitted to its codec's latents of the training cells, no labels. Writes
ipr_jax/assets/NAME/typicality.npz and the manifest entry `typicality` (fit, command, commit);
`pretrained.load(NAME, doubt="typicality")` then samples with it. A real-MNIST model needs
IPR_JAX_MNIST_DIR (its training cells are MNIST digits).

    python -m experiments.tools.ship_mixture --model mnist_sudoku_latent_19k
"""

from __future__ import annotations

import os
import sys

from absl import flags

from experiments import codec, common, shipped, translate
from ipr_jax import pretrained


def define_flags(f: flags.FlagValues) -> None:
  flags.DEFINE_string("model", None, "a shipped latent mnist_sudoku model", flag_values=f)
  flags.mark_flag_as_required("model", flag_values=f)


def ship(model: str, root: str = pretrained.ASSETS) -> dict:
  """Fit and write model's mixture; returns its manifest entry."""
  man = pretrained.manifest(model, root)
  if "codec" not in man:
    raise SystemExit(f"{model!r} has no codec: a mixture types latents, not pixels")
  config = shipped.MODELS[man["benchmark"]][1](man["variant"])
  config.eval.pretrained = model
  stage = translate.codec_stage(config)
  mixture = codec.mixture(stage, *codec.load_folder(model, root))
  info = {
    "fit": (
      f"{codec.MIXTURE_COMPONENTS} full-covariance Gaussians (seed {codec.MIXTURE_SEED}) fitted "
      "to the codec's latents of the training bank's digits 1-9, without labels"
    ),
    "command": f"python -m experiments.tools.ship_mixture --model {model}",
    "commit": common.git_commit(),
  }
  pretrained.save_mixture(os.path.join(root, model), mixture, info)
  return pretrained.manifest(model, root)["typicality"]


def main(argv=None):
  argv = sys.argv[1:] if argv is None else list(argv)
  args = common.parse_flags(define_flags, argv, "experiments.tools.ship_mixture", __doc__)
  print(ship(args.model))


if __name__ == "__main__":
  main()
