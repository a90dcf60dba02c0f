"""Image Sudoku: boards of handwritten digits, region transformer over 9x9 cell patches with the
Sudoku peer graph; scored by our shipped digit classifier.

Digit source `sklearn` (offline default, 8x8 digits -> 72x72 boards) or `idx_dir` (MNIST IDX
files, 252x252 boards; set config.data.idx_dir).
- smoke (seconds, tests):
    python -m experiments.main --config experiments/configs/mnist_sudoku.py:smoke --workdir /tmp/ms --mode train
- cpu (not trained in this release; the throwaway feasibility run needed far longer than 12
  CPU minutes for images: 0/128 valid after 2.8k steps):
    python -m experiments.main --config experiments/configs/mnist_sudoku.py:cpu --workdir runs/ms_cpu --mode train
- paper: spec 6.2/6.3 settings (MNIST digits, 250k steps, 30 IPR rounds) for GPU/TPU; expected
  valid rate: the paper reports 55.8% -> 75.0% with its UNet.
"""
import ml_collections

from experiments.configs import sudoku_symbolic


def get_config(variant: str = "cpu") -> ml_collections.ConfigDict:
  c = sudoku_symbolic.get_config(variant)
  c.benchmark = "mnist_sudoku"
  c.data = dict(source="sklearn", idx_dir=None)
  c.eval.checkpoint = "best"
  if variant == "cpu":
    c.train.update(steps=7_000, eval_every=1750, checkpoint_every=875, eval_samples=64)
    c.eval.checkpoint = "last"  # the cosine-decayed last step (validation: no valid board yet)
  elif variant == "paper":
    c.data.update(source="idx_dir", idx_dir="../shared/data/mnist")
    c.model.update(dim=384, depth=12, heads=6)
    c.train.data_workers = 4  # 252x252 boards composed on the host
  return c
