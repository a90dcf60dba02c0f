"""Train the Counting Polygons evaluator classifier on generated items and ship it.

    python -m experiments.tools.train_polygon_classifier

Generates `--num_train` corrupted training items (mixed vertex counts in half, a random number
pair in 3 of 4, so that every head sees negatives and the numbers head must read the digits),
trains the five-head CNN (a `--negatives` share of every batch replaced by images that are not
clean items, `ce.negatives`: noise, blank, patch-shuffled, heavily noised; a quarter of the
clean ones lightly noised, still clean), prints per-head test accuracy on clean and corrupted
held-out items, the metric rates on ground truth and the rejection rate of held-out negatives of
each kind, then writes ipr_jax/assets/polygons_blank/ (params.npz + manifest with the command,
accuracies, sha256). Same seed, same weights.
"""

from __future__ import annotations

import multiprocessing
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import flags
from tqdm import tqdm

from experiments import common
from ipr_jax import pretrained
from ipr_jax.data import counting_polygons as cp
from ipr_jax.evaluation import counting_polygons as ce


def _train_item(args):
  i, seed = args
  return cp.item(i, "train", corrupt=True, seed=seed)


def _test_item(args):
  i, corrupt = args
  return cp.item(i, "test", corrupt=corrupt, seed=1 if corrupt else 0)


def generate(fn, jobs, desc: str, workers: int):
  """(uint8 images [N, 128, 128, 3], head targets, labels) of the items `fn(job)`, in job order."""
  if workers > 1:
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
      out = list(tqdm(pool.imap(fn, jobs, chunksize=64), total=len(jobs), desc=desc, mininterval=5))
  else:
    out = [fn(j) for j in tqdm(jobs, desc=desc, mininterval=5)]
  images = np.stack([o[0] for o in out])
  labels = [o[1] for o in out]
  return images, ce.targets(labels), labels


def loss_fn(apply, params, x, t):
  logits = apply(params, x, None)
  total = 0.0
  for name, lg in logits.items():
    y = t[name]
    valid = y >= 0
    ce_ = optax.softmax_cross_entropy_with_integer_labels(lg, jnp.maximum(y, 0))
    total = total + jnp.sum(jnp.where(valid, ce_, 0.0)) / jnp.maximum(jnp.sum(valid), 1)
  return total


def with_negatives(rng, x, t, fraction: float):
  """The batch (x f32[B, ...], targets) with a `fraction` of it (in expectation) replaced by
  negatives and a quarter of the remaining clean items plus light N(0, s^2) noise, s < 0.08."""
  t = {k: v.copy() for k, v in t.items()}
  neg = rng.random(len(x)) < fraction
  if neg.any():
    x[neg], _ = ce.negatives(rng, x[neg])
    for k, v in ce.negative_targets(int(neg.sum())).items():
      t[k][neg] = v
  mild = ~neg & (rng.random(len(x)) < 0.25)
  x[mild] += rng.normal(0.0, 1.0, x[mild].shape) * rng.uniform(
    0.0, 0.08, (int(mild.sum()), 1, 1, 1)
  )
  return x, t


def train(
  images,
  targets,
  *,
  epochs: int,
  seed: int,
  batch: int = 32,
  lr: float = 2e-3,
  negatives: float = 0.3,
  cfg: ce.PolygonClassifierConfig = ce.PolygonClassifierConfig(),
):
  apply, params = ce.build(cfg, jax.random.key(seed))
  steps_per_epoch = max(len(images) // batch, 1)
  total = epochs * steps_per_epoch
  opt = optax.chain(
    optax.clip_by_global_norm(1.0),
    optax.adamw(
      optax.warmup_cosine_decay_schedule(
        lr * 0.01, lr, min(200, total // 10 + 1), total + 1, lr * 0.01
      ),
      weight_decay=1e-4,
    ),
  )
  opt_state = opt.init(params)

  @jax.jit
  def step(params, opt_state, x, t):
    loss, grads = jax.value_and_grad(lambda p: loss_fn(apply, p, x, t))(params)
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  rng = np.random.default_rng(seed)
  bar = tqdm(range(total), desc="polygon classifier", mininterval=5)
  for i in bar:
    if i % steps_per_epoch == 0:
      order = rng.permutation(len(images))
    j = np.sort(order[(i % steps_per_epoch) * batch :][:batch])
    x, t = with_negatives(
      rng, cp.to_model(images[j]), {k: v[j] for k, v in targets.items()}, negatives
    )
    params, opt_state, loss = step(
      params, opt_state, jnp.asarray(x), {k: jnp.asarray(v) for k, v in t.items()}
    )
    if i % 200 == 0:
      bar.set_postfix(loss=float(loss))
  return apply, params


def _predict(apply, params, x, batch: int = 100):
  """(predictions, metrics) of model-scale images x f32[N, ...], numpy, in batches."""

  def f(p, x):
    pred = ce.predictions(apply, p, x)
    return pred, ce.metrics_of(pred)

  f = jax.jit(f)
  preds, mets = [], []
  for i in range(0, len(x), batch):
    p, m = f(params, jnp.asarray(x[i : i + batch]))
    preds.append(jax.tree.map(np.asarray, p))
    mets.append(jax.tree.map(np.asarray, m))
  return (
    {k: np.concatenate([p[k] for p in preds]) for k in preds[0]},
    {k: np.concatenate([m[k] for m in mets]) for k in mets[0]},
  )


def evaluate(apply, params, images, targets, labels, batch: int = 100) -> dict:
  """Per-head accuracy and the metrics' rates (and their agreement with the true labels)."""
  pred, met = _predict(apply, params, cp.to_model(images), batch)
  cls = {
    "num_polygons": pred["num_polygons"] - 1,
    "num_vertices": pred["num_vertices"] - cp.VERTICES[0],
    "is_uniform": pred["is_uniform"],
    "numbers": pred["numbers"],
    "is_clean": pred["is_clean"],
  }
  out = {}
  for k, y in targets.items():
    valid = y >= 0
    out[f"acc_{k}"] = float((cls[k][valid] == y[valid]).mean()) if valid.any() else float("nan")
  out["is_clean"] = float(met["is_clean"].mean())
  out["are_vertices_uniform"] = float(met["are_vertices_uniform"].mean())
  out["numbers_match_objects"] = float(met["numbers_match_objects"].mean())
  truth = np.array([l["numbers_match"] for l in labels])
  out["numbers_match_agreement"] = float(
    (met["numbers_match_objects"].astype(bool) == truth).mean()
  )
  return out


def evaluate_negatives(apply, params, images, seed: int) -> dict:
  """Per negative kind (built from held-out items): the share the cleanliness head rejects and
  the headline rates it leaves (both should be ~0)."""
  out = {}
  for k, kind in enumerate(ce.NEGATIVES):
    x, _ = ce.negatives(np.random.default_rng([seed, 7, k]), cp.to_model(images), kinds=(kind,))
    _, met = _predict(apply, params, x)
    out[kind] = {
      "rejected": float(1.0 - met["is_clean"].mean()),
      "numbers_match_objects": float(met["numbers_match_objects"].mean()),
      "are_vertices_uniform": float(met["are_vertices_uniform"].mean()),
    }
  return out


def define_flags(f):
  flags.DEFINE_integer("num_train", 30_000, "training items", flag_values=f)
  flags.DEFINE_integer("num_test", 900, "held-out items", flag_values=f)
  flags.DEFINE_integer("epochs", 6, "epochs", flag_values=f)
  flags.DEFINE_integer("seed", 0, "init, batches, negatives", flag_values=f)
  flags.DEFINE_integer("workers", 2, "processes drawing the items", flag_values=f)
  flags.DEFINE_float(
    "negatives",
    0.3,
    "share of each batch replaced by negatives (noise, blank, shuffled, noised)",
    flag_values=f,
  )
  flags.DEFINE_string("name", "polygons_blank", "asset name", flag_values=f)
  flags.DEFINE_string("out_root", pretrained.ASSETS, "where NAME/ is written", flag_values=f)


def main(argv=None):
  argv = sys.argv[1:] if argv is None else list(argv)
  args = common.parse_flags(
    define_flags, argv, "experiments.tools.train_polygon_classifier", __doc__
  )
  t0 = time.time()
  train_x, train_t, _ = generate(
    _train_item, [(i, args.seed) for i in range(args.num_train)], "generate train", args.workers
  )
  clean = generate(
    _test_item, [(i, False) for i in range(args.num_test)], "generate test", args.workers
  )
  corrupt = generate(
    _test_item, [(i, True) for i in range(args.num_test)], "generate corrupt test", args.workers
  )
  cfg = ce.PolygonClassifierConfig()
  if not 0.0 <= args.negatives < 1.0:
    raise SystemExit(f"--negatives must lie in [0, 1), got {args.negatives}")
  apply, params = train(
    train_x, train_t, epochs=args.epochs, seed=args.seed, negatives=args.negatives, cfg=cfg
  )
  res = {
    "ground_truth": evaluate(apply, params, *clean),
    "corrupted": evaluate(apply, params, *corrupt),
  }
  for name, r in res.items():
    print(
      f"{name} test items ({args.num_test}): " + ", ".join(f"{k} {v:.4f}" for k, v in r.items())
    )
  res["negatives"] = evaluate_negatives(apply, params, clean[0], args.seed)
  for kind, r in res["negatives"].items():
    print(f"negatives {kind} ({args.num_test}): " + ", ".join(f"{k} {v:.4f}" for k, v in r.items()))
  manifest = {
    "benchmark": "counting_polygons",
    "background": "blank",
    "test": res,
    "num_train": args.num_train,
    "num_test": args.num_test,
    "epochs": args.epochs,
    "negatives": args.negatives,
    "seed": args.seed,
    "command": "python -m experiments.tools.train_polygon_classifier " + " ".join(argv),
    "commit": common.git_commit(),
    "seconds": time.time() - t0,
  }
  folder = pretrained.save(
    args.name,
    params,
    {"widths": list(cfg.widths), "strides": list(cfg.strides), "hidden": cfg.hidden},
    manifest,
    root=args.out_root,
  )
  print(f"wrote {folder}")
  return res


if __name__ == "__main__":
  main()
