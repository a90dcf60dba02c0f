"""The experiment's own config dataclasses: the training loop and the evaluation plan.

Like the library's (RefineConfig, OptimConfig, ...), each is one config section, built by
`ipr_jax.structs.from_dict`; their defaults are the base config's (`experiments/configs/base.py`).
"""

from __future__ import annotations

import dataclasses

from ipr_jax.pretrained import DOUBTS  # eval.doubt's names

CHECKPOINTS = ("best", "last")
INIT_MATCH = ("all", "shapes")


@dataclasses.dataclass(frozen=True)
class TrainLoop:
  """config.train: how long and how the training loop runs (the optimiser is config.optim)."""

  steps: int = 10_000
  batch_size: int = 64
  density_images: int = 80_000  # boards drawn to tabulate mean_beta's density of t (method 2)
  checkpoint_every: int = 1000
  log_every: int = 50
  eval_every: int = 1000
  eval_samples: int = 64  # validation puzzles (never the test set)
  eval_split: str = "test"
  max_to_keep: int = 2
  data_workers: int = 0  # > 0: batches built ahead in that many processes
  init_from: str = ""  # a shipped model (ipr_jax.pretrained) to warm-start from
  # "all": init_from must have this architecture; "shapes": copy its params whose name and
  # shape match, the rest (e.g. a new input/output width) keeps its initialisation
  init_match: str = "all"

  def __post_init__(self):
    for name in ("steps", "batch_size", "checkpoint_every", "log_every", "eval_every"):
      value = getattr(self, name)
      if int(value) != value or value < 1:
        raise ValueError(f"train.{name} must be an integer >= 1, got {value}")
    if self.init_match not in INIT_MATCH:
      raise ValueError(f"train.init_match must be one of {INIT_MATCH}, got {self.init_match!r}")


@dataclasses.dataclass(frozen=True)
class EvalPlan:
  """config.eval: what the sample / refine / evaluate modes measure."""

  splits: tuple = ("test",)  # named splits, or (lo, hi) given counts for Sudoku
  num_samples: int = 300
  batch_size: int = 100
  strip_samples: int = 4
  checkpoint: str = "best"  # DIR/best (best validation step) or the last checkpoint
  rounds: dict = dataclasses.field(default_factory=dict)  # per split: overrides refine.rounds
  # the refine methods evaluated, one per selector (refine.selector alone when empty)
  selectors: tuple = ()
  pretrained: str = ""  # a shipped model (ipr_jax.pretrained) instead of DIR's checkpoints
  settings_from: str = ""  # a shipped model whose recommended settings run as a method too
  # the regions' doubt (sampler order, uncertainty selector, picks): "model" (the denoiser's
  # sigma), "typicality" (ipr_jax.typicality over a latent model's clean estimates: the shipped
  # mixture with eval.pretrained, else one fitted to the codec's training cells), or
  # "recommended" (the shipped model's recommended_doubt with eval.pretrained, else "model")
  doubt: str = "recommended"
  # score the boards of every k-th round and the last (from the kept history, after the loop)
  # instead of every round: the metric (for image Sudoku a decode and a classifier read of every
  # cell) costs about ten one-step rounds on 28x28 digits (experiments.studies.scoring_cost)
  score_every: int = 1

  def __post_init__(self):
    if not self.splits:
      raise ValueError("eval.splits is empty: name at least one split")
    if int(self.score_every) != self.score_every or self.score_every < 1:
      raise ValueError(f"eval.score_every must be an integer >= 1, got {self.score_every}")
    if self.checkpoint not in CHECKPOINTS:
      raise ValueError(f"eval.checkpoint must be one of {CHECKPOINTS}, got {self.checkpoint!r}")
    if self.doubt not in DOUBTS:
      raise ValueError(f"eval.doubt must be one of {DOUBTS}, got {self.doubt!r}")
    for split, rounds in self.rounds.items():
      if int(rounds) != rounds or rounds < 0:
        raise ValueError(f"eval.rounds[{split!r}] must be an integer >= 0, got {rounds}")


@dataclasses.dataclass(frozen=True)
class CodecRecipe:
  """config.model.codec of a benchmark with a latent variant (mnist_sudoku): the per-region
  codec's size (latent_dim 0 = pixel space) and how `experiments.codec` trains it: `steps` of
  the whole autoencoder with `latent_noise` on the latents, then `decoder_steps` of the decoder
  alone with `decoder_noise` (the latent space frozen); `normalise`: unit-scale channels."""

  latent_dim: int = 0
  width: int = 32
  latent_noise: float = 0.1
  normalise: bool = True
  steps: int = 3000
  decoder_steps: int = 2000
  decoder_noise: float = 0.05
  batch_size: int = 256
  learning_rate: float = 2e-3

  def __post_init__(self):
    for name in ("latent_dim", "width", "steps", "decoder_steps", "batch_size"):
      value = getattr(self, name)
      if int(value) != value or value < (0 if name in ("latent_dim", "decoder_steps") else 1):
        raise ValueError(f"model.codec.{name} must be a whole number in range, got {value}")


@dataclasses.dataclass(frozen=True)
class CodecStage:
  """What the codec stage of a latent config reads (`translate.codec_stage`)."""

  recipe: CodecRecipe
  source: str  # the digit source (config.data.source)
  idx_dir: str | None
  seed: int
  init_from: str  # a shipped latent model whose codec is taken instead of training one
  pretrained: str  # a shipped latent model evaluated with its own codec
