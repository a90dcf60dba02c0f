"""Shipped weights on disk: npz params keyed by leaf path, a manifest.json beside them, sha256
checks. The bottom floor of `pretrained` (which rebuilds denoisers, codecs and refine settings
from these): the evaluators' classifiers and the checkpoint importer read their weights here,
so they do not sit above the model and algorithm modules."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile

import jax
import jax.numpy as jnp
import numpy as np

ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")


def available() -> list[str]:
  if not os.path.isdir(ASSETS):
    return []
  return sorted(
    d for d in os.listdir(ASSETS) if os.path.exists(os.path.join(ASSETS, d, "manifest.json"))
  )


def leaf_paths(tree) -> list[str]:
  """'a/0/kernel'-style names of a params tree's leaves, in leaf order (the npz keys)."""
  return [
    "/".join(str(getattr(k, "key", k)) for k in path)
    for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]
  ]


def flatten(params) -> dict:
  return dict(zip(leaf_paths(params), map(np.asarray, jax.tree.leaves(params))))


def unflatten(flat: dict, like, source: str) -> dict:
  """`like`'s tree filled from `flat`, after checking every array against `like`'s leaf:
  same key set, shape, dtype, all finite. ValueError naming `source` and the keys otherwise."""
  paths = leaf_paths(like)
  missing, unexpected = sorted(set(paths) - set(flat)), sorted(set(flat) - set(paths))
  if missing or unexpected:
    raise ValueError(
      f"{source} does not fit the model: missing {missing[:5]} "
      f"({len(missing)}), unexpected {unexpected[:5]} ({len(unexpected)})"
    )
  leaves = []
  for path, want in zip(paths, jax.tree.leaves(like)):
    got = flat[path]
    if got.shape != tuple(want.shape) or got.dtype != want.dtype:
      raise ValueError(
        f"{source}: {path} is {got.dtype}{list(got.shape)}, the model needs "
        f"{np.dtype(want.dtype)}{list(want.shape)}"
      )
    if not np.isfinite(got).all():
      raise ValueError(f"{source}: {path} holds NaN or Inf")
    leaves.append(jnp.asarray(got))
  return jax.tree.unflatten(jax.tree.structure(like), leaves)


def sha256(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      h.update(chunk)
  return h.hexdigest()


def load_raw(name: str, like, root: str = ASSETS):
  """(params shaped like `like`, manifest) of shipped asset `name`, after the sha256 check."""
  folder = os.path.join(root, name)
  mpath = os.path.join(folder, "manifest.json")
  if not os.path.exists(mpath):
    raise ValueError(f"no shipped model {name!r} in {root} (available: {available()})")
  manifest = json.load(open(mpath))
  source = manifest.get("params_from", name)
  if (
    not isinstance(source, str)
    or not source
    or os.path.basename(source) != source
    or source in (".", "..")
    or not os.path.exists(os.path.join(root, source, "params.npz"))
  ):
    raise ValueError(
      f"shipped model {name!r}: params_from must name another asset with a "
      f"params.npz in {root}, got {source!r}"
    )
  path = os.path.join(root, source, "params.npz")
  if sha256(path) != manifest["sha256"]:
    raise ValueError(f"{path} does not match the sha256 in its manifest")
  try:
    with np.load(path, allow_pickle=False) as f:
      flat = {k: f[k] for k in f.files}
  except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
    raise ValueError(f"{path}: unreadable ({type(e).__name__}: {e})") from e
  return unflatten(flat, like, path), manifest


def manifest(name: str, root: str = ASSETS) -> dict:
  path = os.path.join(root, name, "manifest.json")
  if not os.path.exists(path):
    raise ValueError(f"no shipped model {name!r} in {root} (available: {available()})")
  return json.load(open(path))
