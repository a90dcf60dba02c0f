"""Map the PyTorch SRM UNet's state dict onto our `UNet` params, and back.

The reference names every tensor by its place in the module tree (`model.encoder.blocks.<e>.<i>`,
...); our `UNet` is built in the same order, so one walk over a `UNetConfig` yields every
(reference key, our param path, layout) triple. Layouts convert torch's weight layouts:
Linear [out, in] -> kernel [in, out]; Conv2d [out, in, kh, kw] -> [kh, kw, in, out]; the
attention's Conv1d [out, in, 1] -> our 1x1 conv kernel [1, 1, in, out]. The per-head qkv channel
grouping ([q|k|v] contiguous per head) is the same on both sides, so no channel permutation.
The one shared time MLP appears once under `time_embedding.mlp` and again (aliases) under every
ResBlock's `norm_with_embedding.t_emb.mlp`; aliases must equal the canonical tensor.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from ipr_jax import denoisers, weights
from ipr_jax.denoisers.unet import UNetConfig

EMA_PREFIX, ONLINE_PREFIX = "ema_denoiser.module.", "denoiser."
OTHER_KEYS = ("ema_denoiser.n_averaged",)  # bookkeeping, no parameter


@dataclasses.dataclass(frozen=True)
class Entry:
  ref_key: str  # reference key without the denoiser prefix
  path: tuple  # our param path, e.g. ("down", 0, "c1", "kernel")
  layout: str  # vector | linear | conv2d | conv1d


class CheckpointMismatchError(ValueError):
  """The checkpoint's tensors do not fit the config; names the file and the offending keys."""


_TO_OURS = {
  "vector": lambda w: w,
  "linear": lambda w: w.T,
  "conv2d": lambda w: w.transpose(2, 3, 1, 0),
  "conv1d": lambda w: w[:, :, 0].T[None, None],
}
_TO_REF = {
  "vector": lambda k: k,
  "linear": lambda k: k.T,
  "conv2d": lambda k: k.transpose(3, 2, 0, 1),
  "conv1d": lambda k: k[0, 0].T[:, :, None],
}


_NDIM = {"vector": 1, "linear": 2, "conv2d": 4, "conv1d": 3}


def _shape(shape, convert) -> tuple:
  """The shape `convert` gives an array of `shape` (on a zero-byte broadcast view)."""
  return tuple(convert(np.broadcast_to(np.zeros((), np.bool_), shape)).shape)


def _layer(ref: str, path: tuple, layout: str) -> list[Entry]:
  """Weight and bias of one torch layer (GroupNorm weight -> our scale)."""
  weight = "scale" if layout == "vector" else "kernel"
  return [
    Entry(f"{ref}.weight", path + (weight,), layout),
    Entry(f"{ref}.bias", path + ("bias",), "vector"),
  ]


def _resblock(ref: str, path: tuple, has_skip: bool) -> list[Entry]:
  out = (
    _layer(f"{ref}.conv_1.0", path + ("n1",), "vector")
    + _layer(f"{ref}.conv_1.2", path + ("c1",), "conv2d")
    + _layer(f"{ref}.norm_with_embedding.embedding_layer.1", path + ("temb",), "linear")
    + _layer(f"{ref}.norm_with_embedding.norm", path + ("n2",), "vector")
    + _layer(f"{ref}.conv_2.2", path + ("c2",), "conv2d")
  )
  return out + (_layer(f"{ref}.shortcut", path + ("skip",), "conv2d") if has_skip else [])


def _attention(ref: str, path: tuple) -> list[Entry]:
  return (
    _layer(f"{ref}.norm", path + ("norm",), "vector")
    + _layer(f"{ref}.qkv", path + ("qkv",), "conv1d")
    + _layer(f"{ref}.proj", path + ("proj",), "conv1d")
  )


def _encoder(cfg: UNetConfig):
  """(entries, resblock refs, skip widths) of conv_in and the `down` list."""
  ws, entries, res = cfg.widths, _layer("model.encoder.blocks.0.0", ("conv_in",), "conv2d"), []
  skips, c, i, e = [ws[0]], ws[0], 0, 1
  for lvl, w in enumerate(ws):
    for _ in range(cfg.num_blocks):
      ref = f"model.encoder.blocks.{e}"
      entries += _resblock(f"{ref}.0", ("down", i), c != w)
      res.append(f"{ref}.0")
      if cfg.attention[lvl]:
        entries += _attention(f"{ref}.1", ("down", i + 1))
      c, i, e = w, i + 2, e + 1
      skips.append(c)
    if lvl < len(ws) - 1:
      entries += _layer(f"model.encoder.blocks.{e}.0.downsample", ("down", i), "conv2d")
      skips.append(c)
      i, e = i + 1, e + 1
  return entries, res, skips


def _bottleneck(c: int):
  ref = "model.bottleneck.blocks"
  entries = (
    _resblock(f"{ref}.0", ("mid", 0), False)
    + _attention(f"{ref}.1", ("mid", 1))
    + _resblock(f"{ref}.2", ("mid", 2), False)
  )
  return entries, [f"{ref}.0", f"{ref}.2"]


def _decoder(cfg: UNetConfig, skips: list):
  ws, entries, res = cfg.widths, [], []
  c, i, e = ws[-1], 0, 0
  for lvl in reversed(range(len(ws))):
    for j in range(cfg.num_blocks + 1):
      ref = f"model.decoder.blocks.{e}"
      cin = c + skips.pop()
      entries += _resblock(f"{ref}.0", ("up", i), cin != ws[lvl])
      res.append(f"{ref}.0")
      if cfg.attention[lvl]:
        entries += _attention(f"{ref}.1", ("up", i + 1))
      c, i = ws[lvl], i + 2
      if j == cfg.num_blocks and lvl > 0:
        sub = 2 if cfg.attention[lvl] else 1
        entries += _layer(f"{ref}.{sub}.conv", ("up", i), "conv2d")
        i += 1
      e += 1
  entries += _layer("model.decoder.out.0", ("norm_out",), "vector") + _layer(
    "model.decoder.out.2", ("conv_out",), "conv2d"
  )
  return entries, res


def layout(cfg: UNetConfig) -> tuple[list[Entry], dict]:
  """Every (reference key, our path, layout) for `cfg`, and the alias map {alias: canonical}
  (reference keys without the denoiser prefix)."""
  if not isinstance(cfg, UNetConfig):
    raise TypeError(f"config must be a UNetConfig, got {type(cfg).__name__}")
  time = _layer("time_embedding.mlp.0", ("time", "fc1"), "linear") + _layer(
    "time_embedding.mlp.2", ("time", "fc2"), "linear"
  )
  enc, enc_res, skips = _encoder(cfg)
  mid, mid_res = _bottleneck(cfg.widths[-1])
  dec, dec_res = _decoder(cfg, skips)
  aliases = {
    f"{r}.norm_with_embedding.t_emb.{t.ref_key[len('time_embedding.') :]}": t.ref_key
    for r in enc_res + mid_res + dec_res
    for t in time
  }
  return time + enc + mid + dec, aliases


def _path_str(path) -> str:
  return "/".join(str(p) for p in path)


def _fmt(keys, limit: int = 8) -> str:
  keys = list(keys)
  more = f" ... (+{len(keys) - limit} more)" if len(keys) > limit else ""
  return ", ".join(keys[:limit]) + more


def check(
  state_dict: dict, cfg: UNetConfig, *, ema: bool = True, source: str = "checkpoint", like=None
) -> list[Entry]:
  """The entries to load, after checking that every parameter of `cfg` is filled exactly once,
  every key under the chosen prefix is used (aliases equal their canonical tensor) and every
  shape fits. `like`: the params template of `cfg` if the caller has built it. Raises
  CheckpointMismatchError naming `source` and the keys."""
  entries, aliases = layout(cfg)
  prefix = EMA_PREFIX if ema else ONLINE_PREFIX
  like = _template(cfg)[1] if like is None else like
  template = dict(zip(weights.leaf_paths(like), (tuple(v.shape) for v in jax.tree.leaves(like))))
  paths = [_path_str(e.path) for e in entries]
  if sorted(paths) != sorted(template) or len(set(paths)) != len(paths):
    raise AssertionError("internal: the SRM key layout does not cover the UNet params once")
  missing = [prefix + e.ref_key for e in entries if prefix + e.ref_key not in state_dict]
  missing += [prefix + a for a in aliases if prefix + a not in state_dict]
  known = {prefix + e.ref_key for e in entries} | {prefix + a for a in aliases}
  other = ONLINE_PREFIX if ema else EMA_PREFIX
  unexpected = [
    k
    for k in state_dict
    if k not in known
    and k not in OTHER_KEYS
    and not (k.startswith(other) and k[len(other) :] in {e.ref_key for e in entries} | set(aliases))
  ]
  wrong = []
  for e in entries:
    if prefix + e.ref_key in state_dict:
      shape, want = tuple(np.shape(state_dict[prefix + e.ref_key])), template[_path_str(e.path)]
      if len(shape) != _NDIM[e.layout] or _shape(shape, _TO_OURS[e.layout]) != want:
        wrong.append(
          f"{prefix + e.ref_key} {list(shape)} (expected {list(_shape(want, _TO_REF[e.layout]))})"
        )
  if missing or unexpected or wrong:
    parts = [
      f"{len(missing)} missing: {_fmt(missing)}" if missing else "",
      f"{len(unexpected)} unexpected: {_fmt(unexpected)}" if unexpected else "",
      f"{len(wrong)} wrong-shaped: {_fmt(wrong, 4)}" if wrong else "",
    ]
    raise CheckpointMismatchError(
      f"{source} does not match the UNet config ({'; '.join(p for p in parts if p)}); "
      "is the config (widths, attention, num_blocks, time_dim, channels) the checkpoint's?"
    )
  bad_alias = [
    prefix + a
    for a, c in aliases.items()
    if not np.array_equal(state_dict[prefix + a], state_dict[prefix + c])
  ]
  if bad_alias:
    raise CheckpointMismatchError(
      f"{source}: the shared time MLP differs between its aliases "
      f"({_fmt(bad_alias)}): not one shared module"
    )
  return entries


def _template(cfg: UNetConfig):
  """(apply, params of shapes only) of our UNet for `cfg`: nothing initialised."""
  return denoisers.build(cfg, None)


def to_params(state_dict: dict, cfg: UNetConfig, *, ema: bool = True, source: str = "checkpoint"):
  """(apply, params) of our UNet from a reference state dict (float32, finite, checked)."""
  apply, like = _template(cfg)
  entries = check(state_dict, cfg, ema=ema, source=source, like=like)
  prefix = EMA_PREFIX if ema else ONLINE_PREFIX
  flat = {}
  for e in entries:
    w = np.asarray(state_dict[prefix + e.ref_key])
    if not np.issubdtype(w.dtype, np.floating):
      raise CheckpointMismatchError(
        f"{source}: {prefix + e.ref_key} has dtype {w.dtype}, expected a float tensor"
      )
    w = np.ascontiguousarray(_TO_OURS[e.layout](w.astype(np.float32)))
    if not np.isfinite(w).all():
      raise CheckpointMismatchError(f"{source}: {prefix + e.ref_key} holds NaN or Inf")
    flat[_path_str(e.path)] = w
  leaves = [jax.numpy.asarray(flat[p]) for p in weights.leaf_paths(like)]
  return apply, jax.tree.unflatten(jax.tree.structure(like), leaves)


def to_state_dict(params, cfg: UNetConfig, *, prefix: str = EMA_PREFIX) -> dict:
  """The reference state dict (numpy, aliases included) of our UNet params under `prefix`:
  the inverse of `to_params`, for round-trip tests and for handing weights to PyTorch code."""
  entries, aliases = layout(cfg)
  flat = weights.flatten(params)
  out = {
    prefix + e.ref_key: np.ascontiguousarray(_TO_REF[e.layout](flat[_path_str(e.path)]))
    for e in entries
  }
  out.update({prefix + a: out[prefix + c] for a, c in aliases.items()})
  return out
