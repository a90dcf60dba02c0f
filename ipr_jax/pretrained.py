"""Shipped models: EMA params as package data (npz) with a manifest (config, command, steps,
wall time, commit, sha256, and optionally the `recommended` sampling/refine settings). A
manifest with `params_from: OTHER` ships no npz of its own: it reads asset OTHER's (same root,
same sha256 check), so one set of weights can ship under two names with different settings.
`load(name)` rebuilds the denoiser, checks the hash and the recommended settings;
`recommended(manifest[, split])` returns those settings as a RefineConfig. A latent model's folder also
holds its per-region codec (`codec.npz`, manifest entry `codec`): `load_codec(name)`, and may
hold a mixture of its clean latents (`typicality.npz`, entry `typicality`): `load(name,
doubt="typicality")` then orders and selects regions by the typicality doubt
(`ipr_jax.typicality`); `doubt="recommended"` takes the manifest's `recommended_doubt`."""

from __future__ import annotations

import dataclasses
import json
import os

import jax.numpy as jnp
import numpy as np

from ipr_jax import denoisers, graphs, latents, refine, structs, typicality
from ipr_jax.weights import (  # noqa: F401  (the public names of shipped weights, re-exported)
  ASSETS,
  available,
  flatten,
  leaf_paths,
  load_raw,
  manifest,
  sha256,
  unflatten,
)

_NAMED = {
  "sudoku": lambda: tuple(tuple(int(i) for i in ids) for ids in graphs.sudoku_position_ids()),
  "sudoku_peers": lambda: tuple(map(tuple, graphs.sudoku_peers())),
}


def model_config(spec: dict):
  """The denoiser config of a manifest's `model` entry: `kind` (default transformer, as the
  first manifests) names the registry entry; named graphs are expanded."""
  spec = dict(spec)
  kind = spec.pop("kind", "transformer")
  for field in ("position_ids", "attention_graph"):
    if isinstance(spec.get(field), str):
      spec[field] = _NAMED[spec[field]]()
  if kind == "transformer":  # nested tuples: the transformer config hashes its graph
    spec = {
      k: tuple(map(tuple, v)) if k in ("position_ids", "attention_graph") and v is not None else v
      for k, v in spec.items()
    }
  return denoisers.make_config(kind, **spec)


def save(name: str, params, model_spec: dict, manifest: dict, root: str = ASSETS) -> str:
  """Write params.npz + manifest.json under root/name; returns the folder."""
  folder = os.path.join(root, name)
  os.makedirs(folder, exist_ok=True)
  path = os.path.join(folder, "params.npz")
  np.savez(path, **flatten(params))
  manifest = dict(manifest, model=model_spec, sha256=sha256(path))
  with open(os.path.join(folder, "manifest.json"), "w") as f:
    json.dump(manifest, f, indent=1)
  return folder


def settings_dict(cfg: refine.RefineConfig) -> dict:
  """The manifest form of a RefineConfig (`structs.to_dict`: its round-0 and per-round samplers
  nested), without the caller's `keep_history`: what goes under manifest["recommended"]."""
  out = structs.to_dict(cfg)
  out.pop("keep_history")
  return out


def recommended(manifest: dict, split: str | None = None) -> refine.RefineConfig:
  """The sampling and refine settings a shipped model is meant to run with (round-0 pass in
  `.initial`, per-round pass in `.ipr`), read by `structs.from_dict` (a field it omits takes
  RefineConfig's default). A manifest may hold other settings for some splits under
  `recommended_for` ({split: settings}, e.g. Sudoku's unique-solution levels): with `split`
  named there, those. ValueError naming the model and the bad entry when they are absent,
  have a key RefineConfig / SamplerConfig lacks, or a value they reject."""
  name = manifest.get("name", "?")
  rec = manifest.get("recommended")
  by_split = manifest.get("recommended_for", {})
  if split is not None and split in by_split:
    rec, name = by_split[split], f"{name}[{split}]"
  if not isinstance(rec, dict):
    raise ValueError(f"shipped model {name!r}: its manifest carries no recommended settings")
  try:
    return structs.from_dict(refine.RefineConfig, rec, f"{name!r}'s recommended settings")
  except (TypeError, ValueError) as e:
    raise ValueError(
      f"shipped model {name!r}: bad recommended settings in its manifest: {type(e).__name__}: {e}"
    ) from e


DOUBTS = ("model", "typicality", "recommended")


def recommended_doubt(manifest: dict) -> str:
  """The doubt a shipped model is meant to sample with: its manifest's `recommended_doubt`
  ("model": the denoiser's own sigma, the default; "typicality": `ipr_jax.typicality`)."""
  doubt = manifest.get("recommended_doubt", "model")
  if doubt not in DOUBTS[:2]:
    raise ValueError(
      f"shipped model {manifest.get('name', '?')!r}: recommended_doubt must be one of "
      f"{DOUBTS[:2]}, got {doubt!r}"
    )
  return doubt


def load(name: str, root: str = ASSETS, dtype: str | None = None, doubt: str = "model"):
  """(apply, params, manifest) of a shipped denoiser; ValueError if missing or altered.
  `dtype` ("float32" / "bfloat16") sets the compute dtype of `apply` (params stay float32);
  None keeps the manifest's (float32 where it names none). `doubt="typicality"` returns the
  denoiser whose sigma is the typicality doubt of its clean estimates (`typicality.with_doubt`,
  params {"denoiser", "mixture"}; ValueError if the model ships no mixture);
  `doubt="recommended"` the manifest's choice (`recommended_doubt`); "model" the plain one."""
  if doubt not in DOUBTS:
    raise ValueError(f"doubt must be one of {DOUBTS}, got {doubt!r}")
  if doubt == "recommended":
    doubt = recommended_doubt(manifest(name, root))
  cfg = model_config(manifest(name, root)["model"])
  if dtype is not None:
    cfg = dataclasses.replace(cfg, dtype=dtype)
  apply, like = denoisers.build(cfg, None)
  params, man = load_raw(name, like, root)
  if "recommended" in man:
    recommended(man)  # a manifest whose settings the sampler rejects fails here, by name
  for split in man.get("recommended_for", {}):
    recommended(man, split)
  if doubt == "typicality":
    return (*typicality.wrap(apply, params, load_mixture(name, root)), man)
  return apply, params, man


TYPICALITY_FILE = "typicality.npz"


def save_mixture(folder: str, mixture: dict, info: dict | None = None) -> str:
  """Write a `typicality.fit` mixture as folder/typicality.npz and its manifest entry
  `typicality` ({components, dim, sha256, **info}; other entries kept); returns the folder."""
  typicality.check(mixture)
  os.makedirs(folder, exist_ok=True)
  path = os.path.join(folder, TYPICALITY_FILE)
  np.savez(path, **{k: np.asarray(mixture[k]) for k in typicality.KEYS})
  mpath = os.path.join(folder, "manifest.json")
  man = json.load(open(mpath)) if os.path.exists(mpath) else {}
  k, d = np.shape(mixture["means"])
  man["typicality"] = dict(info or {}, components=int(k), dim=int(d), sha256=sha256(path))
  with open(mpath + ".tmp", "w") as f:
    json.dump(man, f, indent=1)
  os.replace(mpath + ".tmp", mpath)
  return folder


def load_mixture(name: str, root: str = ASSETS) -> dict:
  """The mixture of model `name`'s clean latents (`ipr_jax.typicality`) after the sha256 check;
  ValueError if it ships none or the file was altered."""
  entry = manifest(name, root).get("typicality")
  path = os.path.join(root, name, TYPICALITY_FILE)
  if not isinstance(entry, dict):
    raise ValueError(f"model {name!r} in {root} ships no typicality mixture")
  if not os.path.exists(path) or sha256(path) != entry.get("sha256"):
    raise ValueError(f"{path} is missing or does not match the sha256 in its manifest")
  with np.load(path, allow_pickle=False) as f:
    mixture = {k: jnp.asarray(f[k], jnp.float32) for k in typicality.KEYS if k in f.files}
  typicality.check(mixture, entry.get("dim"))
  return mixture


CODEC_FILE = "codec.npz"


def save_codec(folder: str, params, cfg: latents.CodecConfig, info: dict | None = None) -> str:
  """Write a codec's params as folder/codec.npz and its entry `codec` ({config, sha256, **info})
  into folder/manifest.json (created if absent, other entries kept); returns the folder."""
  os.makedirs(folder, exist_ok=True)
  path = os.path.join(folder, CODEC_FILE)
  np.savez(path, **flatten(params))
  mpath = os.path.join(folder, "manifest.json")
  man = json.load(open(mpath)) if os.path.exists(mpath) else {}
  man["codec"] = dict(info or {}, config=dataclasses.asdict(cfg), sha256=sha256(path))
  with open(mpath + ".tmp", "w") as f:
    json.dump(man, f, indent=1)
  os.replace(mpath + ".tmp", mpath)
  return folder


def codec_config(name: str, root: str = ASSETS) -> latents.CodecConfig:
  """The CodecConfig of model `name`'s codec; ValueError if it ships none."""
  entry = manifest(name, root).get("codec")
  if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
    raise ValueError(f"model {name!r} in {root} has no codec (a pixel-space model?)")
  return latents.CodecConfig(**entry["config"])


def load_codec(name: str, root: str = ASSETS, dtype: str | None = None):
  """(encode, decode, codec_params) of latent model `name`'s per-region codec, after the sha256
  check: encode(codec_params, x f32[B, H, W, C]) -> z f32[B, rows, cols, d] and decode back
  (`ipr_jax.latents`). `dtype` sets the compute dtype (params stay float32)."""
  cfg = codec_config(name, root)
  if dtype is not None:
    cfg = dataclasses.replace(cfg, dtype=dtype)
  codec, like = latents.build(cfg, None)
  path = os.path.join(root, name, CODEC_FILE)
  if not os.path.exists(path) or sha256(path) != manifest(name, root)["codec"]["sha256"]:
    raise ValueError(f"{path} is missing or does not match the sha256 in its manifest")
  with np.load(path, allow_pickle=False) as f:
    flat = {k: f[k] for k in f.files}
  return codec.encode, codec.decode, unflatten(flat, like, path)
