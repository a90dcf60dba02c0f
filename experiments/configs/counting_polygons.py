"""Counting Polygons (method 5.3): 128x128 RGB, 8x8 patches (256 regions; `model.patch`; the smoke
variant uses 16x16), unconditional; metric:
the two numbers written in the image equal the polygon count and the shared vertex count
(`numbers_match_objects`, scored by our shipped classifier, ipr_jax/assets/polygons_blank).

Blank (white) backgrounds by default; set `config.data.background_dir` to a local image folder
(e.g. FFHQ at 128) for the paper's setting (the classifier was trained on blank backgrounds only).
- smoke (seconds, tests):
    python -m experiments.main --config experiments/configs/counting_polygons.py:smoke --workdir /tmp/cp --mode train
- cpu (shipped as `counting_polygons`, at the evaluator's floor: it draws near-blank pages):
  16x16 patches (64 regions), a 128-wide 4-layer region transformer with the z_t skip (128 < a
  patch's 768 values: without the skip its linear velocity head cannot remove the noise outside a
  128-dim subspace), 7k steps, 59 min on 2 CPU cores (docs/results/counting_polygons.md: the trials, the
  cause, the figures):
    python -m experiments.main --config experiments/configs/counting_polygons.py:cpu --workdir runs/cp_cpu --mode train
- paper: the UNet of method 6.2 (widths 128-512, attention at 16^2 and 8^2), mean_beta 0.5 with
  add_zeros, lr 1e-4, 250k steps at batch 56; IPR 30 rounds, ratio 0.25, 10 steps per
  patch, overlap 0.9 (method 6.3). GPU/TPU.
  The paper's expected metric is reported for FFHQ backgrounds, not blank ones.
"""

import ml_collections


def get_config(variant: str = "cpu") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.benchmark = "counting_polygons"
  c.variant = variant
  c.seed = 0
  c.data = dict(
    background_dir="", classifier="polygons_blank", tfds_dir=None
  )  # tfds_dir: see even_pixels
  # model.kind picks the section: transformer (cpu) or unet (method 6.2, used by paper);
  # dtype: float32, bfloat16, auto (bf16 on GPU/TPU)
  # patch: regions are patch x patch squares (the papers' 8: 256 regions; 16: 64 regions)
  c.model = dict(
    kind="transformer",
    dtype="float32",
    patch=8,
    transformer=dict(dim=128, depth=6, heads=4, mlp_ratio=4, dropout=0.0, skip=True, pixel_head=0),
    unet=dict(
      widths=(128, 128, 256, 256, 512),
      attention=(False, False, False, True, True),
      num_blocks=2,
      groups=32,
      time_dim=512,
      time_freq_dim=256,
      head_channels=64,
      dropout=0.1,
    ),
  )
  # concentration: board_beta only; zeros_power: add_zeros draws the cleaned fraction as
  # u ** (1 / zeros_power) (1 = the papers'; docs/results/counting_polygons.md)
  c.time_sampler = dict(
    kind="mean_beta",
    sharpness=0.5,
    add_zeros=True,
    density_images=80_000,
    concentration=20.0,
    zeros_power=1.0,
  )
  c.train = dict(
    steps=20_000,
    batch_size=32,
    learning_rate=5e-4,
    warmup_steps=1000,
    lr_schedule="cosine",
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
    data_workers=1,  # an item takes ~12 ms to draw: batches built ahead in a worker
    init_from="",  # a shipped model (ipr_jax.pretrained) to warm-start from
    # "all": init_from must have this architecture; "shapes": copy its params whose name and
    # shape match, the rest (e.g. a new input/output width) keeps its initialisation
    init_match="all",
  )
  c.sample = dict(
    steps_per_patch=10,
    overlap=0.9,
    order="greedy",
    alpha=0.5,
    temperature=1.0,
    variance="learned_range",
  )
  c.refine = dict(
    rounds=30,
    resampling_ratio=0.25,
    steps_per_patch=10,
    overlap=0.9,
    noise_type="random",
    selectors=("uniform", "uncertainty"),
  )
  c.eval = dict(
    splits=("test",),
    num_samples=300,
    batch_size=50,
    strip_samples=4,
    checkpoint="best",
    rounds=dict(),  # rounds: per-split overrides of refine.rounds
    pretrained="",  # a shipped model (ipr_jax.pretrained) instead of DIR's checkpoints
    settings_from="",
  )  # a shipped model whose recommended settings run as a method too
  if variant == "smoke":
    c.model.patch = 16
    c.model.transformer.update(dim=16, depth=1, heads=2, mlp_ratio=2)
    c.time_sampler.density_images = 1024
    c.train.update(
      steps=4,
      batch_size=2,
      warmup_steps=2,
      checkpoint_every=2,
      log_every=2,
      eval_every=4,
      eval_samples=2,
      data_workers=0,
    )
    c.sample.update(steps_per_patch=2, overlap=0.5)
    c.refine.update(
      rounds=2, steps_per_patch=2, overlap=0.5, selectors=("uniform",)
    )  # one refine compile in the smoke tests
    c.eval.update(num_samples=2, batch_size=2, strip_samples=2)
  elif variant == "cpu":  # docs/results/counting_polygons.md: the trials behind these choices
    c.model.patch = 16  # 64 regions: 3.4x fewer tokens than 8x8, and IPR's NFE 3.3x fewer
    c.model.transformer.update(dim=128, depth=4)  # 128 < 768 values: the z_t skip does the rest
    c.train.update(
      steps=7000,
      learning_rate=1e-3,
      warmup_steps=300,
      lr_schedule="cosine",
      checkpoint_every=500,
      eval_every=3500,
    )
    c.eval.checkpoint = "last"
  elif variant == "paper":
    c.model.update(kind="unet", dtype="auto")
    c.train.update(
      steps=250_000,
      batch_size=56,
      learning_rate=1e-4,
      warmup_steps=5000,
      lr_schedule="constant",
      ema_decay=0.9999,
      checkpoint_every=5000,
      eval_every=10_000,
      eval_samples=64,
      data_workers=8,
    )
    c.eval.update(num_samples=500)
  else:
    raise ValueError(f"variant must be smoke, cpu or paper, got {variant!r}")
  return c
