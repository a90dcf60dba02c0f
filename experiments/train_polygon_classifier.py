"""Train the Counting Polygons evaluator classifier on generated items and ship it.

    python -m experiments.train_polygon_classifier

Generates `--num_train` corrupted training items (mixed vertex counts in half, a random number
pair in 3 of 4, so that every head sees negatives and the numbers head must read the digits), trains the four-head CNN, prints per-head test
accuracy on clean and corrupted held-out items and the metric rates on ground truth, then writes
ipr_jax/assets/polygons_blank/ (params.npz + manifest with the command, accuracies, sha256).
Same seed, same weights.
"""
from __future__ import annotations

import argparse
import multiprocessing
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
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


def train(images, targets, *, epochs: int, seed: int, batch: int = 32, lr: float = 2e-3,
          cfg: ce.PolygonClassifierConfig = ce.PolygonClassifierConfig()):
  apply, params = ce.build(cfg, jax.random.key(seed))
  steps_per_epoch = max(len(images) // batch, 1)
  total = epochs * steps_per_epoch
  opt = optax.chain(optax.clip_by_global_norm(1.0),
                    optax.adamw(optax.warmup_cosine_decay_schedule(lr * 0.01, lr, min(200, total // 10 + 1),
                                                                   total + 1, lr * 0.01),
                                weight_decay=1e-4))
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
    j = np.sort(order[(i % steps_per_epoch) * batch:][:batch])
    x = jnp.asarray(cp.to_model(images[j]))
    params, opt_state, loss = step(params, opt_state, x, {k: jnp.asarray(v[j]) for k, v in targets.items()})
    if i % 200 == 0:
      bar.set_postfix(loss=float(loss))
  return apply, params


def evaluate(apply, params, images, targets, labels, batch: int = 100) -> dict:
  """Per-head accuracy and the two metrics' rates (and their agreement with the true labels)."""
  def f(p, x):
    pred = ce.predictions(apply, p, x)
    return pred, ce.metrics_of(pred)
  f = jax.jit(f)
  preds, mets = [], []
  for i in range(0, len(images), batch):
    p, m = f(params, jnp.asarray(cp.to_model(images[i:i + batch])))
    preds.append(jax.tree.map(np.asarray, p))
    mets.append(jax.tree.map(np.asarray, m))
  pred = {k: np.concatenate([p[k] for p in preds]) for k in preds[0]}
  met = {k: np.concatenate([m[k] for m in mets]) for k in mets[0]}
  cls = {"num_polygons": pred["num_polygons"] - 1, "num_vertices": pred["num_vertices"] - cp.VERTICES[0],
         "is_uniform": pred["is_uniform"], "numbers": pred["numbers"]}
  out = {}
  for k, y in targets.items():
    valid = y >= 0
    out[f"acc_{k}"] = float((cls[k][valid] == y[valid]).mean()) if valid.any() else float("nan")
  out["are_vertices_uniform"] = float(met["are_vertices_uniform"].mean())
  out["numbers_match_objects"] = float(met["numbers_match_objects"].mean())
  truth = np.array([l["numbers_match"] for l in labels])
  out["numbers_match_agreement"] = float((met["numbers_match_objects"].astype(bool) == truth).mean())
  return out


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--num_train", type=int, default=30_000)
  ap.add_argument("--num_test", type=int, default=900)
  ap.add_argument("--epochs", type=int, default=6)
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--workers", type=int, default=2)
  ap.add_argument("--name", default="polygons_blank")
  ap.add_argument("--out_root", default=pretrained.ASSETS)
  args = ap.parse_args(argv)
  t0 = time.time()
  train_x, train_t, _ = generate(_train_item, [(i, args.seed) for i in range(args.num_train)],
                                 "generate train", args.workers)
  clean = generate(_test_item, [(i, False) for i in range(args.num_test)], "generate test", args.workers)
  corrupt = generate(_test_item, [(i, True) for i in range(args.num_test)], "generate corrupt test",
                     args.workers)
  cfg = ce.PolygonClassifierConfig()
  apply, params = train(train_x, train_t, epochs=args.epochs, seed=args.seed, cfg=cfg)
  res = {"ground_truth": evaluate(apply, params, *clean), "corrupted": evaluate(apply, params, *corrupt)}
  for name, r in res.items():
    print(f"{name} test items ({args.num_test}): " + ", ".join(f"{k} {v:.4f}" for k, v in r.items()))
  manifest = {"benchmark": "counting_polygons", "background": "blank", "test": res,
              "num_train": args.num_train, "num_test": args.num_test, "epochs": args.epochs,
              "seed": args.seed,
              "command": "python -m experiments.train_polygon_classifier " + " ".join(
                  sys.argv[1:] if argv is None else argv),
              "commit": common.git_commit(), "seconds": time.time() - t0}
  folder = pretrained.save(args.name, params, {"widths": list(cfg.widths),
                                               "strides": list(cfg.strides), "hidden": cfg.hidden},
                           manifest, root=args.out_root)
  print(f"wrote {folder}")
  return res


if __name__ == "__main__":
  main()
