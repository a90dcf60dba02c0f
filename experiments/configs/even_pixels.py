"""Even Pixels (method 5.2): 32x32 RGB, 4x4 patches (64 regions), unconditional; metric: exactly
half the pixels of each of two opposite hues (`is_color_count_even`).

- smoke (seconds, tests):
    python -m experiments.main --config experiments/configs/even_pixels.py:smoke --workdir /tmp/ep --mode train
- cpu: the shipped offline model (ipr_jax/assets/even_pixels): a 64-wide, 4-layer region
  transformer with the z_t skip and a 64-unit per-pixel head, 10k steps, about 50 min on 2 CPU
  cores (resumable; trials in docs/results/even_pixels.md; clean two-hue samples, but it does not
  count: the headline is at chance):
    python -m experiments.main --config experiments/configs/even_pixels.py:cpu --workdir runs/ep_cpu --mode train
  refine 300 held-out samples at the paper's settings (30 rounds, ratio 0.25, 30 steps per
  patch, overlap 0.9) with the trained run, or with the shipped model and no training:
    python -m experiments.main --config experiments/configs/even_pixels.py:cpu --workdir runs/ep_cpu --mode refine
    python -m experiments.main --config experiments/configs/even_pixels.py:cpu --config.eval.pretrained=even_pixels --workdir runs/ep_shipped --mode refine
- paper: method 6.2/6.3 (the paper's UNet, lr 8e-4, 100k steps, 30 steps per patch, overlap 0.9, 30 rounds).
"""

import ml_collections

from experiments.configs import base


def get_config(variant: str = "cpu") -> ml_collections.ConfigDict:
  c = base.get_config("even_pixels", variant)
  # training items are drawn procedurally (ipr_jax.data.even_pixels); the held-out test set is
  # prepared by its TFDS builder in tfds_dir (None = $TFDS_DATA_DIR or ~/tensorflow_datasets)
  c.data = dict(tfds_dir=None)
  # model.kind: transformer (cpu) or unet (method 6.2's UNet, attention at 8^2 and 4^2, used by
  # paper); transformer.skip / pixel_head: a z_t skip / a per-pixel MLP head of that many units
  # (0: none; trials of both in docs/results/even_pixels.md)
  c.model.unet.update(widths=(64, 128, 128, 256), attention=(False, False, True, True))
  # zeros_power: add_zeros draws the cleaned fraction as u ** (1 / zeros_power) (1 = the
  # papers'; docs/results/even_pixels.md)
  c.time_sampler.update(sharpness=0.75, add_zeros=True)
  c.optim.update(learning_rate=8e-4, warmup_steps=1000, ema_decay=0.999)
  c.train.update(steps=20_000, eval_every=2000, eval_samples=32)
  c.refine.update(rounds=30)
  c.refine.initial.update(steps_per_patch=30, overlap=0.9)
  c.refine.ipr.update(steps_per_patch=30, overlap=0.9)
  c.eval.selectors = ("uniform", "uncertainty")
  if variant == "smoke":
    c.model.transformer.update(dim=16, depth=1, heads=2, mlp_ratio=2, skip=True)  # 16 < 48
    c.optim.warmup_steps = 2
    c.train.update(
      steps=4,
      batch_size=4,
      density_images=4096,
      checkpoint_every=2,
      log_every=2,
      eval_every=4,
      eval_samples=2,
    )
    c.refine.rounds = 2
    c.refine.initial.update(steps_per_patch=2, overlap=0.5)
    c.refine.ipr.update(steps_per_patch=2, overlap=0.5)
    c.eval.update(num_samples=2, batch_size=2, strip_samples=2, selectors=("uniform",))
  elif variant == "cpu":  # docs/results/even_pixels.md: the trials behind these choices
    c.model.transformer.update(skip=True, pixel_head=64)
    c.optim.update(learning_rate=1e-3, warmup_steps=500, decay_steps=10_000)
    c.train.update(steps=10_000, eval_every=2500, eval_samples=64)
    c.eval.checkpoint = "last"  # the cosine-decayed last step; validation on 64 items never
    #                             left the chance level, so it cannot rank checkpoints
  elif variant == "paper":
    c.model.update(kind="unet", dtype="auto")
    c.optim.update(warmup_steps=5000, ema_decay=0.9999)
    c.train.update(steps=100_000, batch_size=2048, data_workers=8)
  else:
    raise ValueError(f"variant must be smoke, cpu or paper, got {variant!r}")
  return c
