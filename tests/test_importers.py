"""The SRM checkpoint importer against the reference's own numbers (shared/fixtures/srm_unet).

The fixture is a small reference UNet with random weights: a Lightning `.ckpt`, the same state
dict as `.npz`, and `io.npz`, inputs captured from the reference sampler with every output the
reference computed from them. No torch is needed. Tolerance: 3e-5 absolute on network outputs
(measured max 1.4e-5, mean 8e-7, on values up to 2.9: float32 summation order; a layout error
shows as O(0.1)); 1e-6 on the flow step.
"""

import os
import pickle
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ipr_jax import denoisers, flow, importers, regions
from ipr_jax.importers import srm_unet, torch_zip

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "fixtures", "srm_unet")
pytestmark = pytest.mark.skipif(
  not os.path.isdir(FIXTURE), reason="shared/fixtures/srm_unet absent"
)
CFG = denoisers.UNetConfig(
  36,
  36,
  1,
  4,
  widths=(32, 32, 32, 32),
  attention=(False, False, False, True),
  num_blocks=2,
  time_dim=16,
  head_channels=16,
)
ATOL = 3e-5


def _io():
  return dict(np.load(os.path.join(FIXTURE, "io.npz")))


def _nhwc(a):
  return jnp.asarray(np.asarray(a).transpose(0, 2, 3, 1))


def _nchw(a):
  return np.asarray(a).transpose(0, 3, 1, 2)


def test_ckpt_reads_bit_for_bit_like_the_npz():
  ckpt = torch_zip.read(os.path.join(FIXTURE, "model.ckpt"))
  assert ckpt["global_step"] == 250001 and ckpt["optimizer_states"] == []
  npz = importers.read_state_dict(os.path.join(FIXTURE, "state_dict.npz"))
  sd = ckpt["state_dict"]
  assert list(sd) == list(npz) and len(sd) == 781
  for k in npz:
    assert sd[k].dtype == npz[k].dtype and np.array_equal(sd[k], npz[k]), k


@pytest.mark.parametrize("ema", [True, False])
@pytest.mark.parametrize("fname", ["model.ckpt", "state_dict.npz"])
def test_apply_reproduces_the_reference_outputs(fname, ema):
  io = _io()
  apply, params = importers.load_srm_checkpoint(os.path.join(FIXTURE, fname), CFG, ema=ema)
  assert sum(x.size for x in jax.tree.leaves(params)) == 644_867
  out = jax.jit(apply)(params, _nhwc(io["z_t"]), jnp.asarray(io["t_region"]))
  pre, raw = ("", io["denoiser_out"]) if ema else ("online_", io["online_denoiser_out"])
  np.testing.assert_allclose(_nchw(out.velocity), io[pre + "velocity"], atol=ATOL, rtol=0)
  np.testing.assert_allclose(_nchw(out.v_interp), io[pre + "v_interp"], atol=ATOL, rtol=0)
  np.testing.assert_allclose(out.sigma_region, io[pre + "sigma_region"], atol=ATOL, rtol=0)
  # the raw network output: [velocity | raw v | logvar (region means)]
  np.testing.assert_allclose(_nchw(out.v_interp) * 2 - 1, raw[:, 1:2], atol=2 * ATOL, rtol=0)
  if ema:
    np.testing.assert_allclose(2 * np.log(out.sigma_region), io["logvar_region"], atol=ATOL, rtol=0)
  other = "online_" if ema else ""  # the other copy's weights are really different
  assert np.abs(_nchw(out.velocity) - io[other + "velocity"]).max() > 0.05


def test_flow_reverse_step_reproduces_the_reference_step():
  io = _io()
  t, s, z = _nhwc(io["t"]), _nhwc(io["t_next"]), _nhwc(io["z_t"])
  u, v, alpha = _nhwc(io["velocity"]), _nhwc(io["v_interp"]), float(io["alpha"])
  close = lambda ours, name: np.testing.assert_allclose(_nchw(ours), io[name], atol=1e-6, rtol=0)
  close(flow.x_hat(z, t, u), "x_hat")
  close(flow.eps_hat(z, t, u), "eps_hat")
  close(flow.sigma_small(t, s, alpha), "step_sigma_small")
  close(flow.sigma_large(t, s, alpha), "step_sigma_large")
  close(flow.gamma(t, s, alpha), "step_gamma")
  mean, std = flow.reverse_kernel(z, t, s, u, v, alpha=alpha, temperature=float(io["temperature"]))
  close(mean, "step_mean")
  # where t = t* (waiting at 1 or given at 0) our step is the exact identity (std 0); the
  # reference floors the variance at e^-30 there (std e^-15 = 3.1e-7), inside the tolerance
  same = io["t"] == io["t_next"]
  assert same.any() and (~same).any()
  assert np.all(_nchw(std)[np.broadcast_to(same, io["step_std"].shape)] == 0)
  close(std, "step_std")
  z_s = flow.reverse_step(None, z, t, s, u, v, alpha=alpha, noise=_nhwc(io["step_noise"]))
  known = jnp.asarray(io["mask_region"] == 0)
  close(
    regions.impose_known(z_s, known, _nhwc(io["masked"]), regions.make_grid(36, 36, 4)), "z_next"
  )


def test_state_dict_round_trip():
  sd = importers.read_state_dict(os.path.join(FIXTURE, "state_dict.npz"))
  _, params = importers.load_srm_checkpoint(os.path.join(FIXTURE, "state_dict.npz"), CFG, ema=False)
  back = srm_unet.to_state_dict(params, CFG, prefix="denoiser.")
  assert set(back) == {k for k in sd if k.startswith("denoiser.")}
  for k, v in back.items():
    np.testing.assert_array_equal(v, sd[k])


def _reference_keys(widths, attention, num_blocks, channels, t_emb, d_emb=256):
  """{key: torch shape} the reference saves for one denoiser, spelled out from the fixture
  README's naming scheme (written independently of the importer's walk)."""
  keys = {}

  def layer(name, weight_shape):
    keys[f"{name}.weight"] = weight_shape
    keys[f"{name}.bias"] = (weight_shape[0],)

  def res(name, cin, cout):
    layer(f"{name}.conv_1.0", (cin,))
    layer(f"{name}.conv_1.2", (cout, cin, 3, 3))
    layer(f"{name}.norm_with_embedding.t_emb.mlp.0", (t_emb, d_emb))
    layer(f"{name}.norm_with_embedding.t_emb.mlp.2", (t_emb, t_emb))
    layer(f"{name}.norm_with_embedding.norm", (cout,))
    layer(f"{name}.norm_with_embedding.embedding_layer.1", (cout, t_emb))
    layer(f"{name}.conv_2.2", (cout, cout, 3, 3))
    if cin != cout:
      layer(f"{name}.shortcut", (cout, cin, 1, 1))

  def attn(name, c):
    layer(f"{name}.norm", (c,))
    layer(f"{name}.qkv", (3 * c, c, 1))
    layer(f"{name}.proj", (c, c, 1))

  layer("time_embedding.mlp.0", (t_emb, d_emb))
  layer("time_embedding.mlp.2", (t_emb, t_emb))
  layer("model.encoder.blocks.0.0", (widths[0], channels, 3, 3))
  entry, skips, c = 1, [widths[0]], widths[0]
  for lvl, w in enumerate(widths):
    for _ in range(num_blocks):
      res(f"model.encoder.blocks.{entry}.0", c, w)
      if attention[lvl]:
        attn(f"model.encoder.blocks.{entry}.1", w)
      skips.append(w)
      c, entry = w, entry + 1
    if lvl + 1 < len(widths):
      layer(f"model.encoder.blocks.{entry}.0.downsample", (c, c, 3, 3))
      skips.append(c)
      entry += 1
  res("model.bottleneck.blocks.0", c, c)
  attn("model.bottleneck.blocks.1", c)
  res("model.bottleneck.blocks.2", c, c)
  entry = 0
  for lvl in range(len(widths) - 1, -1, -1):
    for j in range(num_blocks + 1):
      w = widths[lvl]
      res(f"model.decoder.blocks.{entry}.0", c + skips.pop(), w)
      if attention[lvl]:
        attn(f"model.decoder.blocks.{entry}.1", w)
      if j == num_blocks and lvl > 0:
        layer(f"model.decoder.blocks.{entry}.{2 if attention[lvl] else 1}.conv", (w, w, 3, 3))
      c, entry = w, entry + 1
  layer("model.decoder.out.0", (c,))
  layer("model.decoder.out.2", (2 * channels + 1, c, 3, 3))
  return keys


def test_reference_key_scheme_matches_the_fixture():
  """The test's own key generator is right: it lists exactly the fixture's keys and shapes."""
  listed = {}
  for line in open(os.path.join(FIXTURE, "keys.txt")):
    if line.startswith("#"):
      continue
    key, shape = line.split("\t")[:2]
    if key.startswith("denoiser."):
      listed[key[len("denoiser.") :]] = tuple(int(x) for x in shape.strip("[]").split(",") if x)
  assert _reference_keys((32,) * 4, (False, False, False, True), 2, 1, 16) == listed


def test_paper_mnist_sudoku_mapping_is_complete():
  """Shape only: every key the reference saves for the paper's MNIST-Sudoku UNet (method 6.2)
  maps onto our 118,994,691 params, each filled once."""
  cfg = denoisers.UNetConfig(
    252, 252, 1, 28, widths=(128, 128, 256, 256, 512, 512), attention=(False,) * 4 + (True, True)
  )
  keys = _reference_keys(cfg.widths, cfg.attention, 2, 1, 512)
  zero = np.zeros((), np.float32)
  sd = {
    p + k: np.broadcast_to(zero, s)
    for p in ("denoiser.", "ema_denoiser.module.")
    for k, s in keys.items()
  }
  sd["ema_denoiser.n_averaged"] = np.array(250_000)
  entries = srm_unet.check(sd, cfg, ema=True)
  assert (
    sum(int(np.prod(sd["ema_denoiser.module." + e.ref_key].shape)) for e in entries) == 118_994_691
  )
  assert (
    len({e.path for e in entries})
    == len(entries)
    == len(jax.tree.leaves(denoisers.build(cfg, None)[1]))
  )


# --- bad input: each a clear error naming the file / key, never a partial load ---------------


def _write_zip(path, members):
  with zipfile.ZipFile(path, "w") as zf:
    for name, data in members.items():
      zf.writestr(name, data)


def test_truncated_and_non_zip_files(tmp_path):
  src = os.path.join(FIXTURE, "model.ckpt")
  cut = tmp_path / "cut.ckpt"
  cut.write_bytes(open(src, "rb").read()[:2_000_000])
  with pytest.raises(importers.CheckpointFormatError, match="cut.ckpt"):
    importers.load_srm_checkpoint(str(cut), CFG)
  junk = tmp_path / "junk.ckpt"
  junk.write_bytes(b"not a checkpoint at all")
  with pytest.raises(importers.CheckpointFormatError, match="junk.ckpt.*not a zip"):
    importers.load_srm_checkpoint(str(junk), CFG)
  with pytest.raises(importers.CheckpointFormatError, match="no such"):
    importers.load_srm_checkpoint(str(tmp_path / "absent.ckpt"), CFG)


class _Evil:
  def __reduce__(self):
    return (os.system, ("echo pwned",))


def test_pickle_asking_for_another_class_is_refused(tmp_path):
  path = tmp_path / "evil.ckpt"
  _write_zip(
    path,
    {
      "archive/data.pkl": pickle.dumps({"state_dict": _Evil()}, protocol=2),
      "archive/byteorder": "little",
    },
  )
  with pytest.raises(
    importers.CheckpointFormatError, match=r"evil.ckpt.*refusing to load (posix|os)\.system"
  ):
    importers.load_srm_checkpoint(str(path), CFG)


def test_storage_too_short_is_refused(tmp_path):
  """A record shorter than its tensor (an edited or truncated member) is caught, not read past."""
  path = tmp_path / "short.ckpt"
  with (
    zipfile.ZipFile(os.path.join(FIXTURE, "model.ckpt")) as src,
    zipfile.ZipFile(path, "w") as dst,
  ):
    for name in src.namelist():
      data = src.read(name)
      dst.writestr(name, data[:8] if name.endswith("/data/0") else data)
  with pytest.raises(importers.CheckpointFormatError, match="short.ckpt.*data/0"):
    importers.read_state_dict(str(path))


def test_other_architecture_and_mismatched_config():
  other = denoisers.UNetConfig(
    36,
    36,
    1,
    4,
    widths=(32, 32, 32),
    attention=(False, False, True),
    num_blocks=2,
    time_dim=16,
    head_channels=16,
  )
  path = os.path.join(FIXTURE, "state_dict.npz")
  with pytest.raises(
    importers.CheckpointMismatchError, match=r"state_dict.npz.*unexpected: .*encoder"
  ):
    importers.load_srm_checkpoint(path, other)
  wrong_time = CFG.__class__(**{**CFG.__dict__, "time_dim": 32})
  with pytest.raises(
    importers.CheckpointMismatchError,
    match=r"wrong-shaped: ema_denoiser.module.time_embedding.mlp.0.weight \[16, 256\] \(expected \[32, 256\]\)",
  ):
    importers.load_srm_checkpoint(path, wrong_time)
  rgb = CFG.__class__(**{**CFG.__dict__, "channels": 3})
  with pytest.raises(importers.CheckpointMismatchError, match="encoder.blocks.0.0.weight"):
    importers.load_srm_checkpoint(path, rgb)
  with pytest.raises(TypeError, match="UNetConfig"):
    importers.load_srm_checkpoint(path, denoisers.TransformerConfig(36, 36, 1, 4))


def _edited(tmp_path, edit):
  sd = importers.read_state_dict(os.path.join(FIXTURE, "state_dict.npz"))
  edit(sd)
  path = str(tmp_path / "edited.npz")
  np.savez(path, **sd)
  return path


def test_missing_unexpected_alias_and_nan_keys(tmp_path):
  key = "ema_denoiser.module.model.decoder.out.2.weight"
  path = _edited(tmp_path, lambda sd: sd.pop(key))
  with pytest.raises(importers.CheckpointMismatchError, match=f"edited.npz.*1 missing: {key}"):
    importers.load_srm_checkpoint(path, CFG)
  path = _edited(
    tmp_path, lambda sd: sd.update({"ema_denoiser.module.label_embedding.weight": np.ones(3)})
  )
  with pytest.raises(
    importers.CheckpointMismatchError, match="1 unexpected: ema_denoiser.module.label_embedding"
  ):
    importers.load_srm_checkpoint(path, CFG)
  alias = "ema_denoiser.module.model.encoder.blocks.1.0.norm_with_embedding.t_emb.mlp.0.bias"
  path = _edited(tmp_path, lambda sd: sd.update({alias: sd[alias] + 1}))
  with pytest.raises(importers.CheckpointMismatchError, match="aliases.*encoder.blocks.1.0"):
    importers.load_srm_checkpoint(path, CFG)

  def nan(sd):
    sd[key] = sd[key].copy()
    sd[key][0, 0, 0, 0] = np.nan

  with pytest.raises(importers.CheckpointMismatchError, match="out.2.weight holds NaN"):
    importers.load_srm_checkpoint(_edited(tmp_path, nan), CFG)
  # the online weights of that file are intact: ema=False loads
  importers.load_srm_checkpoint(_edited(tmp_path, nan), CFG, ema=False)


def test_unet_config_from_hydra(tmp_path):
  path = tmp_path / "config.yaml"
  path.write_text("""
model:
  denoiser:
    name: unet
    hid_dims: [32, 32, 32, 32]
    attention: [false, false, false, true]
    num_blocks: 2
    t_emb_dim: 16
    embedding: {name: sinusoidal, d_emb: 256}
    attention_cfg: {num_head_channels: 16}
    res_block_cfg: {dropout: 0.1, use_scale_shift_norm: false}
dataset:
  image_shape: [36, 36]
patch_size: 4
""")
  assert importers.unet_config_from_hydra(str(path), channels=1) == CFG
  with pytest.raises(importers.CheckpointFormatError, match="does not say channels"):
    importers.unet_config_from_hydra(str(path))
  bad = tmp_path / "bad.yaml"
  bad.write_text("model: {denoiser: {name: transformer}}\n")
  with pytest.raises(importers.CheckpointFormatError, match="bad.yaml.*hid_dims"):
    importers.unet_config_from_hydra(str(bad), channels=1)


def test_import_checkpoint_cli_feeds_the_experiment_modes(tmp_path):
  """A reference-format checkpoint of a small even-pixels UNet, imported into a run directory:
  `--mode sample` there uses exactly its EMA weights (same numbers as those params passed in)."""
  from experiments import evaluate, translate
  from experiments.tools import import_checkpoint
  from experiments.configs import even_pixels

  config = even_pixels.get_config("smoke")
  config.model.update(kind="unet")
  config.model.unet.update(
    widths=(16, 16), attention=(False, True), groups=8, time_dim=16, head_channels=8
  )
  model = translate.translate(config).model
  apply, ema_params = denoisers.build(model, jax.random.key(1))
  _, online = denoisers.build(model, jax.random.key(2))
  sd = {
    **srm_unet.to_state_dict(ema_params, model),
    **srm_unet.to_state_dict(online, model, prefix="denoiser."),
    "ema_denoiser.n_averaged": np.array(7),
  }
  ckpt = str(tmp_path / "ref.npz")
  np.savez(ckpt, **sd)
  folder = import_checkpoint.run(config, ckpt, str(tmp_path / "run"))
  assert os.path.exists(os.path.join(folder, "params.npz"))
  got = evaluate.run(config, str(tmp_path / "run"), "sample")
  assert "imported" in got["checkpoint"]
  want = evaluate.run(
    config, str(tmp_path / "direct"), "sample", params_source=(apply, ema_params, "direct")
  )
  assert got["metrics"] == want["metrics"]
  other = config.copy_and_resolve_references()
  other.model.unet.widths = (16, 32)  # the imported weights are not this architecture's
  with pytest.raises(
    ValueError,
    match=r"imported is a UNetConfig that differs from the "
    r"config's UNetConfig in: widths \(16, 16\) vs \(16, 32\)",
  ):
    evaluate.run(other, str(tmp_path / "run"), "sample")
  with pytest.raises(ValueError, match="model.kind is 'transformer'"):
    import_checkpoint.run(even_pixels.get_config("smoke"), ckpt, str(tmp_path / "t"))
  yaml_path = tmp_path / "config.yaml"
  yaml_path.write_text(
    "model:\n  denoiser:\n    hid_dims: [16, 32]\n    attention: [false, true]\n"
    "    t_emb_dim: 16\n    num_head_channels: 8\n"
  )
  with pytest.raises(ValueError, match=r"widths: config \(16, 16\) vs .*\(16, 32\)"):
    import_checkpoint.run(config, ckpt, str(tmp_path / "h"), hydra_config=str(yaml_path))
