"""Per-region latent codec: a small conv autoencoder between one region's pixels and a d-dim
latent, so the SRM sampler and IPR run over a grid of latents exactly as over symbolic cells.

    codec, params = latents.build(CodecConfig(patch=8, latent_dim=8), key)
    z = codec.encode(params, x)        # x f32[B, H, W, C] in [-1, 1] -> z f32[B, H/p, W/p, d]
    x_rec = codec.decode(params, z)    # f32[B, H, W, C] in [-1, 1]

`params` = {"net": the autoencoder's weights, "mean": f32[d], "std": f32[d]}: the latent is
normalised per channel with the statistics of the training images' latents (`normalise`), so
the denoiser sees unit-scale channels. The codec is trained on images alone (`reconstruction_loss`,
`make_train_step`); labels and the evaluator classifier never shape it. A second training stage
with the encoder frozen (`train_encoder=False`) sharpens the decoder without moving the latent
space, so a denoiser trained on the latents stays valid. Every region is coded
on its own: `_over_regions` is the one place regions are vmapped, so encode(x) of a board
equals the per-cell encodings laid out on the grid.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import chex
import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from ipr_jax.denoisers.common import compute_dtype


@dataclasses.dataclass(frozen=True)
class CodecConfig:
  """One region of `patch` x `patch` x `channels` pixels <-> `latent_dim` numbers."""

  patch: int = 8  # region side in pixels, a multiple of 4 (two stride-2 convs)
  channels: int = 1
  latent_dim: int = 8
  width: int = 32  # conv channels of the first layer (the second has 2x)
  dtype: str = "float32"  # compute dtype; params, latents and pixels stay float32

  def __post_init__(self):
    for name in ("patch", "channels", "latent_dim", "width"):
      v = getattr(self, name)
      if int(v) != v or v < 1:
        raise ValueError(f"CodecConfig.{name} must be a positive integer, got {v!r}")
    if self.patch % 4:
      raise ValueError(f"CodecConfig.patch must be a multiple of 4, got {self.patch}")
    compute_dtype(self.dtype)


class RegionAutoencoder(nnx.Module):
  """Encoder conv3x3(C->w) GELU, conv3x3/2(w->2w) GELU, conv3x3/2(2w->2w) GELU, linear -> d;
  decoder linear -> (p/4)^2 x 2w, [upsample x2, conv3x3] x2 with GELU, conv3x3 -> C."""

  def __init__(self, cfg: CodecConfig, *, rngs: nnx.Rngs):
    dt, w, c = compute_dtype(cfg.dtype), cfg.width, cfg.channels
    conv = lambda i, o, s=1: nnx.Conv(i, o, (3, 3), strides=s, padding="SAME", dtype=dt, rngs=rngs)
    self.small = cfg.patch // 4
    flat = 2 * w * self.small**2
    self.enc = nnx.List([conv(c, w), conv(w, 2 * w, 2), conv(2 * w, 2 * w, 2)])
    self.to_latent = nnx.Linear(flat, cfg.latent_dim, dtype=dt, rngs=rngs)
    self.from_latent = nnx.Linear(cfg.latent_dim, flat, dtype=dt, rngs=rngs)
    self.dec = nnx.List([conv(2 * w, 2 * w), conv(2 * w, w)])
    self.to_pixels = conv(w, c)

  def encode(self, tiles):
    """tiles f32[N, p, p, C] -> raw latents f32[N, d]."""
    h = tiles
    for layer in self.enc:
      h = nnx.gelu(layer(h))
    return self.to_latent(h.reshape(h.shape[0], -1)).astype(jnp.float32)

  def decode(self, z):
    """raw latents f32[N, d] -> tiles f32[N, p, p, C] (not clipped)."""
    h = nnx.gelu(self.from_latent(z)).reshape(z.shape[0], self.small, self.small, -1)
    for layer in self.dec:
      h = jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)
      h = nnx.gelu(layer(h))
    return self.to_pixels(h).astype(jnp.float32)


class Codec(NamedTuple):
  """The codec's pure functions; params are always their first argument."""

  config: CodecConfig
  encode: Callable  # (params, x f32[B, H, W, C]) -> z f32[B, H/p, W/p, d]
  decode: Callable  # (params, z f32[B, rows, cols, d]) -> x f32[B, rows p, cols p, C]
  encode_raw: Callable  # (net, tiles f32[N, p, p, C]) -> f32[N, d], before normalisation
  decode_raw: Callable  # (net, f32[N, d]) -> f32[N, p, p, C], unclipped


def _check_finite(a, name: str) -> None:
  if not isinstance(a, jax.core.Tracer) and not np.isfinite(np.asarray(a)).all():
    raise ValueError(f"{name} holds NaN or Inf")


def _check_image(cfg: CodecConfig, x) -> None:
  """ValueError unless x is f32[B, H, W, C] with p | H, W and C = cfg.channels (and finite)."""
  if np.ndim(x) != 4:
    raise ValueError(f"x must be f32[B, H, W, C], got shape {np.shape(x)}")
  _, h, w, c = np.shape(x)
  if h % cfg.patch or w % cfg.patch or c != cfg.channels:
    raise ValueError(
      f"x of shape {np.shape(x)} does not tile into regions of "
      f"{cfg.patch}x{cfg.patch}x{cfg.channels} (the codec's region size)"
    )
  _check_finite(x, "x")


def _check_latent(cfg: CodecConfig, z) -> None:
  """ValueError unless z is f32[B, rows, cols, d] with d = cfg.latent_dim (and finite)."""
  if np.ndim(z) != 4 or np.shape(z)[-1] != cfg.latent_dim:
    raise ValueError(
      f"z must be f32[B, rows, cols, {cfg.latent_dim}] (latent_dim "
      f"{cfg.latent_dim}), got shape {np.shape(z)}"
    )
  _check_finite(z, "z")


def to_regions(x, patch: int):
  """f32[B, H, W, C] -> f32[B, H/p, W/p, p, p, C]: each region's tile on the region grid."""
  b, h, w, c = x.shape
  return x.reshape(b, h // patch, patch, w // patch, patch, c).transpose(0, 1, 3, 2, 4, 5)


def from_regions(tiles):
  """f32[B, rows, cols, p, p, C] -> f32[B, rows p, cols p, C]; inverse of `to_regions`."""
  b, rows, cols, p, _, c = tiles.shape
  return tiles.transpose(0, 1, 3, 2, 4, 5).reshape(b, rows * p, cols * p, c)


def _over_regions(fn):
  """fn(params, one region's array) vmapped over the batch and the region grid [B, rows, cols]."""
  for _ in range(3):
    fn = jax.vmap(fn, in_axes=(None, 0))
  return fn


def build(cfg: CodecConfig, key) -> tuple[Codec, dict]:
  """(Codec, params) with the identity normalisation (mean 0, std 1; `normalise` sets it).
  With key None, params are jax.ShapeDtypeStructs (a template to load shipped weights into)."""
  if key is None:
    module = nnx.eval_shape(lambda: RegionAutoencoder(cfg, rngs=nnx.Rngs(0)))
  else:
    module = RegionAutoencoder(cfg, rngs=nnx.Rngs(int(jax.random.randint(key, (), 0, 2**31 - 1))))
  graphdef, state = nnx.split(module)
  abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), state)

  def merged(net):
    filled = jax.tree.map(lambda a: a, abstract)
    nnx.replace_by_pure_dict(filled, net)
    return nnx.merge(graphdef, filled)

  encode_raw = lambda net, tiles: merged(net).encode(tiles)
  decode_raw = lambda net, z: merged(net).decode(z)

  def encode_region(params, tile):  # f32[p, p, C] -> f32[d]
    return (encode_raw(params["net"], tile[None])[0] - params["mean"]) / params["std"]

  def decode_region(params, z):  # f32[d] -> f32[p, p, C]
    return decode_raw(params["net"], (z * params["std"] + params["mean"])[None])[0]

  def encode(params, x):
    _check_image(cfg, x)
    z = _over_regions(encode_region)(params, to_regions(jnp.asarray(x, jnp.float32), cfg.patch))
    chex.assert_shape(
      z, (x.shape[0], x.shape[1] // cfg.patch, x.shape[2] // cfg.patch, cfg.latent_dim)
    )
    return z

  def decode(params, z):
    _check_latent(cfg, z)
    x = from_regions(_over_regions(decode_region)(params, jnp.asarray(z, jnp.float32)))
    return jnp.clip(x, -1.0, 1.0)

  d = cfg.latent_dim
  if key is None:
    norm = {
      "mean": jax.ShapeDtypeStruct((d,), jnp.float32),
      "std": jax.ShapeDtypeStruct((d,), jnp.float32),
    }
  else:
    norm = {"mean": jnp.zeros(d, jnp.float32), "std": jnp.ones(d, jnp.float32)}
  return (
    Codec(cfg, encode, decode, encode_raw, decode_raw),
    {"net": nnx.to_pure_dict(state), **norm},
  )


# ---- training (images only) ----


@flax.struct.dataclass
class CodecState:
  step: jax.Array  # i32[]
  net: dict  # the autoencoder's weights (params["net"])
  opt_state: object  # optax state of `net`


def init_state(params, optimizer, step: int = 0) -> CodecState:
  net = jax.tree.map(jnp.copy, params["net"])
  return CodecState(jnp.asarray(step, jnp.int32), net, optimizer.init(net))


def decoder_only(optimizer: optax.GradientTransformation) -> optax.GradientTransformation:
  """`optimizer` on the decoder's entries of params["net"]; the encoder's are never updated."""
  labels = lambda net: {k: "frozen" if k in ENCODER else "train" for k in net}
  return optax.multi_transform({"train": optimizer, "frozen": optax.set_to_zero()}, labels)


ENCODER = ("enc", "to_latent")  # the encoder's entries of params["net"]


def reconstruction_loss(
  codec: Codec, net, tiles, key, latent_noise: float = 0.1, train_encoder: bool = True
):
  """Mean squared error of tiles f32[N, p, p, C] through the codec, with Gaussian noise of
  `latent_noise` x the batch's per-channel std on the latents (the decoder then tolerates the
  small misses of a denoiser's samples). With `train_encoder=False` the encoder gets no gradient
  (the latent space stays where it is). Returns (loss, {'loss'})."""
  z = codec.encode_raw(net, tiles)
  if not train_encoder:
    z = jax.lax.stop_gradient(z)
  scale = jax.lax.stop_gradient(jnp.std(z, axis=0) + 1e-6)
  noisy = z + latent_noise * scale * jax.random.normal(key, z.shape)
  loss = jnp.mean((codec.decode_raw(net, noisy) - tiles) ** 2)
  return loss, {"loss": loss}


def make_train_step(
  codec: Codec,
  optimizer: optax.GradientTransformation,
  *,
  latent_noise: float = 0.1,
  train_encoder: bool = True,
):
  """Jitted step(state, tiles f32[N, p, p, C], key) -> (state, {'loss'}), state donated. With
  `train_encoder=False`, pass `decoder_only(optimizer)` (here and to `init_state`)."""
  if not latent_noise >= 0:
    raise ValueError(f"latent_noise must be >= 0, got {latent_noise}")

  def step(state: CodecState, tiles, key):
    chex.assert_shape(tiles, (None, codec.config.patch, codec.config.patch, codec.config.channels))
    loss = lambda n: reconstruction_loss(codec, n, tiles, key, latent_noise, train_encoder)
    grads, metrics = jax.grad(loss, has_aux=True)(state.net)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.net)
    return CodecState(state.step + 1, optax.apply_updates(state.net, updates), opt_state), metrics

  return jax.jit(step, donate_argnums=0)


def normalise(codec: Codec, net, tiles, batch: int = 4096) -> dict:
  """Codec params of trained weights `net`: the latent mean and std per channel over `tiles`
  f32[N, p, p, C] (the training images' regions), so encoded latents have unit scale."""
  f = jax.jit(codec.encode_raw)
  z = np.concatenate(
    [np.asarray(f(net, tiles[i : i + batch])) for i in range(0, len(tiles), batch)]
  )
  return {
    "net": net,
    "mean": jnp.asarray(z.mean(axis=0), jnp.float32),
    "std": jnp.asarray(np.maximum(z.std(axis=0), 1e-6), jnp.float32),
  }


def identity_normalisation(net, latent_dim: int) -> dict:
  """Codec params of `net` without normalisation (the ablation's other arm)."""
  return {
    "net": net,
    "mean": jnp.zeros(latent_dim, jnp.float32),
    "std": jnp.ones(latent_dim, jnp.float32),
  }


def latent_metric(decode: Callable, pixel_metric: Callable) -> Callable:
  """metric_fn(metric_params, z) = pixel_metric(metric_params['pixels'],
  decode(metric_params['codec'], z)): a pixel-space evaluator over latent samples, with the
  codec and evaluator weights both arguments of the compiled refine (`ipr_jax.refine`)."""

  def metric_fn(metric_params, z):
    return pixel_metric(metric_params["pixels"], decode(metric_params["codec"], z))

  return metric_fn
