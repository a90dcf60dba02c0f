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


def get_config(variant: str = "cpu") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.benchmark = "even_pixels"
  c.variant = variant
  c.seed = 0
  # training items are drawn procedurally (ipr_jax.data.even_pixels); the held-out test set is
  # prepared by its TFDS builder in tfds_dir (None = $TFDS_DATA_DIR or ~/tensorflow_datasets)
  c.data = dict(tfds_dir=None)
  # model.kind picks the section: transformer (cpu) or unet (method 6.2's UNet, attention at 8^2
  # and 4^2, used by paper); dtype: float32, bfloat16, auto (bf16 on GPU/TPU); transformer.skip /
  # pixel_head: a z_t skip / a per-pixel MLP head of that many units (0: none; trials of both in
  # docs/results/even_pixels.md)
  c.model = dict(
    kind="transformer",
    dtype="float32",
    transformer=dict(dim=64, depth=4, heads=4, mlp_ratio=4, dropout=0.0, skip=False, pixel_head=0),
    unet=dict(
      widths=(64, 128, 128, 256),
      attention=(False, False, True, True),
      num_blocks=2,
      groups=32,
      time_dim=512,
      time_freq_dim=256,
      head_channels=64,
      dropout=0.1,
    ),
  )
  # concentration: board_beta only; zeros_power: add_zeros draws the cleaned fraction as
  # u ** (1 / zeros_power) (1 = the papers'; docs/results/even_pixels.md)
  c.time_sampler = dict(
    kind="mean_beta",
    sharpness=0.75,
    add_zeros=True,
    density_images=80_000,
    concentration=20.0,
    zeros_power=1.0,
  )
  c.train = dict(
    steps=20_000,
    batch_size=64,
    learning_rate=8e-4,
    warmup_steps=1000,
    lr_schedule="constant",
    ema_decay=0.999,
    weight_decay=1e-6,
    b1=0.95,
    vlb_weight=1.0,
    sigma_weight=0.01,
    loss_reduction="all",
    checkpoint_every=1000,
    log_every=50,
    eval_every=2000,
    eval_samples=32,
    eval_split="test",
    max_to_keep=2,
    data_workers=0,  # > 0: batches built ahead in that many processes
    init_from="",  # a shipped model (ipr_jax.pretrained) to warm-start from
    # "all": init_from must have this architecture; "shapes": copy its params whose name and
    # shape match, the rest (e.g. a new input/output width) keeps its initialisation
    init_match="all",
  )
  c.sample = dict(
    steps_per_patch=30,
    overlap=0.9,
    order="greedy",
    alpha=0.5,
    temperature=1.0,
    variance="learned_range",
  )
  c.refine = dict(
    rounds=30,
    resampling_ratio=0.25,
    steps_per_patch=30,
    overlap=0.9,
    noise_type="random",
    selectors=("uniform", "uncertainty"),
  )
  c.eval = dict(
    splits=("test",),
    num_samples=300,
    batch_size=100,
    strip_samples=4,
    checkpoint="best",
    rounds=dict(),  # rounds: per-split overrides of refine.rounds
    pretrained="",  # a shipped model (ipr_jax.pretrained) instead of DIR's checkpoints
    settings_from="",
  )  # a shipped model whose recommended settings run as a method too
  if variant == "smoke":
    c.model.transformer.update(dim=16, depth=1, heads=2, mlp_ratio=2, skip=True)  # 16 < 48
    c.time_sampler.density_images = 4096
    c.train.update(
      steps=4,
      batch_size=4,
      warmup_steps=2,
      checkpoint_every=2,
      log_every=2,
      eval_every=4,
      eval_samples=2,
    )
    c.sample.update(steps_per_patch=2, overlap=0.5)
    c.refine.update(
      rounds=2, steps_per_patch=2, overlap=0.5, selectors=("uniform",)
    )  # one refine compile in the smoke tests
    c.eval.update(num_samples=2, batch_size=2, strip_samples=2)
  elif variant == "cpu":  # docs/results/even_pixels.md: the trials behind these choices
    c.model.transformer.update(skip=True, pixel_head=64)
    c.train.update(
      steps=10_000,
      learning_rate=1e-3,
      lr_schedule="cosine",
      warmup_steps=500,
      eval_every=2500,
      eval_samples=64,
    )
    c.eval.checkpoint = "last"  # the cosine-decayed last step; validation on 64 items never
    #                             left the chance level, so it cannot rank checkpoints
  elif variant == "paper":
    c.model.update(kind="unet", dtype="auto")
    c.train.update(
      steps=100_000, batch_size=2048, warmup_steps=5000, ema_decay=0.9999, data_workers=8
    )
  else:
    raise ValueError(f"variant must be smoke, cpu or paper, got {variant!r}")
  return c
