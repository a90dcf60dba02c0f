"""The field's framework, built for our configs: spatialreasoners' UNet, denoising model and
sequential sampler (PyPI 1.0.5, PyTorch), for `tests/test_peers.py` and
`experiments/studies/peer_speed.py`. Needs the optional extra (`pip install -e ".[peers]"`);
torch and the peer are imported inside the functions, so importing this module needs neither.

Nothing of the peer is copied: its classes are built from their configs and called. What maps
one side to the other:
- weights: the peer's UNet has the reference's module tree (the checkpoints our importer reads),
  with the time MLP named `t_emb` and no `model.` level (`peer_key`);
- steps: the peer's sequential schedule takes a total step count (max_steps), ours steps per
  region; for n unknown regions max_steps = our M = ceil(p_s + (n - 1)(1 - overlap) p_s), so a
  batch whose items have different n has no single peer equivalent (it stretches the regions of
  the items with fewer unknowns);
- v: the peer's flow takes the network's raw v channel as the interpolation weight; the
  reference's wrapper (and we) take (raw + 1) / 2.
"""

from __future__ import annotations

import dataclasses
import types

import numpy as np

from ipr_jax.denoisers import UNetConfig
from ipr_jax.importers import srm_unet

EXTRA = 'the peers extra is absent: pip install -e ".[peers]"'


def peer_key(ref_key: str) -> str:
  """The reference's (and our importer's) state-dict key -> the peer UNet's."""
  if ref_key.startswith("time_embedding."):
    return "t_emb." + ref_key[len("time_embedding.") :]
  if not ref_key.startswith("model."):
    raise ValueError(f"not a key of the reference UNet: {ref_key!r}")
  return ref_key[len("model.") :]


def _unet_cfg(cfg: UNetConfig):
  from spatialreasoners.denoising_model.denoiser.embedding import EmbeddingSinusodialCfg
  from spatialreasoners.denoising_model.denoiser.unet import model as unet_model
  from spatialreasoners.denoising_model.denoiser.unet.modules import (
    MultiHeadAttentionCfg,
    ResBlockCfg,
  )

  if cfg.groups != 32 or cfg.time_freq_dim != 256:
    raise ValueError(
      "the peer's UNet has GroupNorm(32) and a 256-wide sinusoid; got "
      f"groups={cfg.groups}, time_freq_dim={cfg.time_freq_dim}"
    )
  return unet_model.UNetCfg(
    time_embedding=EmbeddingSinusodialCfg(d_emb=256),
    hid_dims=list(cfg.widths),
    attention=list(cfg.attention),
    num_blocks=cfg.num_blocks,
    attention_cfg=MultiHeadAttentionCfg(num_head_channels=cfg.head_channels),
    res_block_cfg=ResBlockCfg(dropout=cfg.dropout),
    time_embedding_dim=cfg.time_dim,
  )


def variable_mapper(cfg: UNetConfig):
  """The peer's image variable mapper: one variable per p x p region, row-major."""
  from spatialreasoners.variable_mapper import image_variable_mapper as m

  return m.ImageVariableMapper(
    m.ImageVariableMapperCfg(variable_patch_size=cfg.patch), (cfg.channels, cfg.height, cfg.width)
  )


def denoising_model(cfg: UNetConfig):
  """The peer's DenoisingModel around its UNet for `cfg`: rectified flow, velocity ("ut")
  parameterisation, learned-range variance and per-region uncertainty, no EMA, eval mode."""
  from spatialreasoners.denoising_model import denoising_model as dm
  from spatialreasoners.denoising_model.flow import RectifiedFlowCfg
  from spatialreasoners.denoising_model.tokenizer.unet_tokenizer.unet_tokenizer import (
    UNetTokenizerCfg,
  )
  from spatialreasoners.type_extensions import ConditioningCfg

  model_cfg = dm.DenoisingModelCfg(
    denoiser=_unet_cfg(cfg),
    flow=RectifiedFlowCfg(variance="learned_range"),
    tokenizer=UNetTokenizerCfg(),
    conditioning=ConditioningCfg(label=False, mask=True),
    learn_uncertainty=True,
    learn_variance=True,
  )
  # no step tracker: only training reads it (the peer's own one starts a multiprocessing manager)
  return dm.DenoisingModel(model_cfg, variable_mapper(cfg), None, None).eval()


def load_params(model, params, cfg: UNetConfig) -> None:
  """Our UNet params into the peer model's UNet (strict: every tensor, nothing else)."""
  import torch

  ref = srm_unet.to_state_dict(params, cfg, prefix="")
  unet = getattr(model, "denoiser", model)
  result = unet.load_state_dict({peer_key(k): torch.as_tensor(v) for k, v in ref.items()})
  if result.missing_keys or result.unexpected_keys:
    raise ValueError(f"peer UNet keys differ: {result}")


def state_dict_for_importer(unet, cfg: UNetConfig) -> dict:
  """The peer UNet's weights as the reference's EMA state dict, for `srm_unet.to_params`."""
  entries, aliases = srm_unet.layout(cfg)
  ref_keys = {peer_key(k): k for k in [e.ref_key for e in entries] + list(aliases)}
  peer = {k: v.detach().numpy() for k, v in unet.state_dict().items()}
  if set(ref_keys) != set(peer):
    raise ValueError(f"peer UNet keys differ: {sorted(set(ref_keys) ^ set(peer))[:8]}")
  return {srm_unet.EMA_PREFIX + ref_keys[k]: v for k, v in peer.items()}


def sequential_sampler(cfg: UNetConfig, max_steps: int, overlap: float, alpha: float, temperature):
  """The peer's ScheduledInferenceSampler with its lowest-sigma-first sequential schedule."""
  from spatialreasoners.benchmark.evaluation.inference_sampler import scheduled_inference_sampler
  from spatialreasoners.benchmark.evaluation.inference_sampler.sampling_schedule import (
    AdaptiveSequentialCfg,
  )

  s = scheduled_inference_sampler
  sampler_cfg = s.ScheduledInferenceSamplerCfg(
    alpha=alpha,
    temperature=temperature,
    use_ema=False,
    sampling_schedule=AdaptiveSequentialCfg(max_steps=max_steps, overlap=overlap),
  )
  return s.ScheduledInferenceSampler(sampler_cfg, variable_mapper(cfg))


def sample(model, sampler, z, known, known_values):
  """One peer sampling pass over a batch: z, known_values f32[B, H, W, C] (ours, NHWC),
  known bool[B, R]. Returns (x f32[B, H, W, C], steps i64[B]: network calls per item)."""
  import torch

  mapper = model.variable_mapper
  nchw = lambda a: torch.as_tensor(np.asarray(a, np.float32)).permute(0, 3, 1, 2)
  unknown = torch.as_tensor(~np.asarray(known), dtype=torch.float32)
  x_masked = mapper.unstructured_tensor_to_variables(nchw(known_values)) * (1 - unknown)[..., None]
  z_vars = x_masked + unknown[..., None] * mapper.unstructured_tensor_to_variables(nchw(z))
  with torch.no_grad():
    *_, final = sampler(
      model, z_vars, unknown.clone(), mask=unknown, x_masked=x_masked, return_sigma=True
    )
  x = mapper.variables_tensor_to_unstructured(final.z_t).permute(0, 2, 3, 1).numpy()
  return x, final.step.numpy()


def sequential_schedule(known, max_steps: int, overlap: float):
  """The peer's AdaptiveSequential schedule object for a batch, known bool[B, R] (it plans on
  construction; AssertionError where its float32 plan repeats a block start)."""
  import torch
  from spatialreasoners.benchmark.evaluation.inference_sampler import sampling_schedule as ss

  b, r = np.shape(known)
  return ss.AdaptiveSequential(
    ss.AdaptiveSequentialCfg(max_steps=max_steps, overlap=overlap),
    b,
    "cpu",
    None,
    types.SimpleNamespace(num_variables=r),  # all the schedule reads of its variable mapper
    mask=torch.as_tensor(~np.asarray(known), dtype=torch.float32),
  )


@dataclasses.dataclass
class Driven:
  rows: np.ndarray  # f32[steps + 1, B, R]: every region's noise level, row 0 the start
  schedule: object  # the peer's schedule object after the run


def drive_schedule(known, sigma, max_steps: int, overlap: float) -> Driven:
  """Run the peer's AdaptiveSequential schedule alone, called as its ScheduledInferenceSampler
  calls it (once per step, on the unfinished rows, with its mask cut to them), with a fixed
  per-region sigma f32[B, R] standing in for the network's. known bool[B, R]."""
  import torch

  mask = torch.as_tensor(~np.asarray(known), dtype=torch.float32)
  sched = sequential_schedule(known, max_steps, overlap)
  t, rows = mask.clone(), [mask.clone()]
  while sched.is_unfinished_mask.any():
    rel = sched.is_unfinished_mask.clone()
    sched.mask = mask[rel]
    t_next, _ = sched(t[rel], torch.as_tensor(np.asarray(sigma, np.float32))[rel])
    t = t.clone()
    t[rel] = t_next
    rows.append(t.clone())
  return Driven(np.stack([row.numpy() for row in rows]), sched)
