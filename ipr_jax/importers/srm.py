"""Load a published SRM/IPR checkpoint (Lightning `.ckpt` or state-dict `.npz`) as our UNet.

    apply, params = load_srm_checkpoint("ms1000_28/last.ckpt", config)   # EMA weights
    out = apply(params, z_t, t_region)                                   # DenoiserOutput

No torch is needed and nothing is fetched: the user downloads the file. The reference run's
hydra `config.yaml` (when the user has it) gives the `UNetConfig` via `unet_config_from_hydra`.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping

import numpy as np
import yaml

from ipr_jax.denoisers.unet import UNetConfig
from ipr_jax.importers import srm_unet, torch_zip
from ipr_jax.importers.torch_zip import CheckpointFormatError


def read_state_dict(path: str) -> dict:
  """{key: numpy array} of a Lightning/torch `.ckpt` (its 'state_dict') or a state-dict `.npz`."""
  if not os.path.isfile(path):
    raise CheckpointFormatError(f"{path}: no such checkpoint file")
  if not zipfile.is_zipfile(path):
    raise CheckpointFormatError(
      f"{path}: not a zip archive (a torch >= 1.6 checkpoint or an .npz "
      "is one; legacy tar/pickle checkpoints are not read)"
    )
  with zipfile.ZipFile(path) as zf:
    is_torch = any(n == "data.pkl" or n.endswith("/data.pkl") for n in zf.namelist())
  if is_torch:
    obj = torch_zip.read(path)
    state = obj.get("state_dict", obj) if isinstance(obj, Mapping) else obj
  else:
    try:
      with np.load(path, allow_pickle=False) as f:
        state = {k: f[k] for k in f.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
      raise CheckpointFormatError(f"{path}: unreadable .npz ({type(e).__name__}: {e})") from e
  if not isinstance(state, Mapping) or not all(
    isinstance(k, str) and isinstance(v, np.ndarray) for k, v in state.items()
  ):
    raise CheckpointFormatError(f"{path}: holds no state dict of named tensors")
  return dict(state)


def load_srm_checkpoint(path: str, config: UNetConfig, *, ema: bool = True):
  """(apply, params) of our UNet filled from the reference checkpoint at `path`.

  ema=True takes the `ema_denoiser.module.*` weights (what the reference samples with), False
  the online `denoiser.*` ones. Every parameter is filled exactly once, every key of the chosen
  copy is used, the shared time MLP's aliases must agree, and every tensor must be finite:
  otherwise CheckpointMismatchError / CheckpointFormatError naming the file and the keys.
  """
  return srm_unet.to_params(read_state_dict(path), config, ema=ema, source=path)


def _find(tree, names):
  """First value of any key in `names`, depth first through nested dicts and lists."""
  if isinstance(tree, Mapping):
    for n in names:
      if n in tree:
        return tree[n]
    children = tree.values()
  elif isinstance(tree, list):
    children = tree
  else:
    return None
  for child in children:
    found = _find(child, names)
    if found is not None:
      return found
  return None


def _denoiser_section(cfg: dict, path: str) -> dict:
  model = cfg.get("model", cfg) if isinstance(cfg, Mapping) else None
  section = _find(model, ("denoiser",)) if model is not None else None
  if not isinstance(section, Mapping) or "hid_dims" not in section:
    section = model
  if not isinstance(section, Mapping) or _find(section, ("hid_dims",)) is None:
    raise CheckpointFormatError(f"{path}: no model.denoiser.hid_dims: not an SRM UNet run config")
  return section


def unet_config_from_hydra(path: str, **overrides) -> UNetConfig:
  """The `UNetConfig` of a reference run from its hydra `config.yaml`.

  Reads, wherever they sit in the model section: hid_dims, attention (bool or per level),
  num_blocks, t_emb_dim, num_head_channels, the sinusoid's d_emb, dropout; and anywhere in the
  file: patch_size and image_shape (or image_size). `overrides` (height, width, channels, patch,
  ...) fill or replace what the file lacks. Unsupported variants (scale-shift norm) are refused.
  """
  try:
    with open(path) as f:
      cfg = yaml.safe_load(f)
  except (OSError, yaml.YAMLError) as e:
    raise CheckpointFormatError(f"{path}: unreadable YAML ({type(e).__name__}: {e})") from e
  den = _denoiser_section(cfg, path)
  widths = tuple(int(w) for w in _find(den, ("hid_dims",)))
  attention = _find(den, ("attention",))
  attention = (
    tuple(bool(a) for a in attention)
    if isinstance(attention, list)
    else ((bool(attention),) * len(widths))
  )
  blocks = _find(den, ("num_blocks",))
  blocks = blocks if blocks is not None else 2
  if isinstance(blocks, list):
    if len(set(blocks)) != 1:
      raise CheckpointFormatError(f"{path}: per-level num_blocks {blocks} are not supported")
    blocks = blocks[0]
  if _find(den, ("use_scale_shift_norm",)):
    raise CheckpointFormatError(f"{path}: use_scale_shift_norm=true is not the SRM UNet we port")
  found = dict(widths=widths, attention=attention, num_blocks=int(blocks))
  for field, names in (
    ("time_dim", ("t_emb_dim", "time_emb_dim", "d_t_emb")),
    ("head_channels", ("num_head_channels", "head_channels")),
    ("time_freq_dim", ("d_emb",)),
    ("dropout", ("dropout",)),
  ):
    value = _find(den, names)
    if value is not None:
      found[field] = type(getattr(UNetConfig(1, 1, 1, 1), field))(value)
  patch = _find(cfg, ("patch_size",))
  shape = _find(cfg, ("image_shape", "image_size"))
  if patch is not None:
    found["patch"] = int(patch)
  if shape is not None:
    shape = [int(shape)] * 2 if isinstance(shape, int) else [int(s) for s in shape]
    found["height"], found["width"] = shape[-2], shape[-1]
  channels = _find(cfg, ("d_data", "num_channels", "channels"))
  if channels is not None:
    found["channels"] = int(channels)
  found.update(overrides)
  lacking = [f for f in ("height", "width", "channels", "patch") if f not in found]
  if lacking:
    raise CheckpointFormatError(
      f"{path}: the file does not say {', '.join(lacking)}; pass them "
      f"as keyword arguments (e.g. {lacking[0]}=...)"
    )
  return UNetConfig(**found)
