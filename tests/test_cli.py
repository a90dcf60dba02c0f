"""The experiments' one command-line convention (absl flags on a script's own FlagValues) and
their one table printer."""

import json

import pytest
from absl import flags

from experiments import common, tables
from experiments.tools import readme_table


def _define(f):
  flags.DEFINE_integer("num", 100, "items", flag_values=f)
  flags.DEFINE_list("models", ["a", "b"], "models", flag_values=f)


def test_parse_flags_reads_values_and_names_bad_input(capsys):
  args = common.parse_flags(_define, ["--num=3", "--models=x,y,z"], "demo")
  assert (args.num, args.models) == (3, ["x", "y", "z"])
  assert common.parse_flags(_define, [], "demo").num == 100  # a fresh FlagValues each call
  with pytest.raises(SystemExit, match="demo: .*nmu"):
    common.parse_flags(_define, ["--nmu=3"], "demo")
  with pytest.raises(SystemExit, match="demo: .*num"):
    common.parse_flags(_define, ["--num=three"], "demo")
  with pytest.raises(SystemExit, match=r"unexpected argument\(s\) \['extra'\]"):
    common.parse_flags(_define, ["extra"], "demo")
  with pytest.raises(SystemExit) as stop:
    common.parse_flags(_define, ["--help"], "demo", "What the demo does.")
  assert stop.value.code == 0
  out = capsys.readouterr().out
  assert "What the demo does." in out and "--num" in out


def test_tables_render_markdown_and_text():
  md = tables.render(["a", "bb"], [[1, "x"], ["long", 2.5]])
  assert md.splitlines() == ["| a | bb |", "|---|---|", "| 1 | x |", "| long | 2.5 |"]
  text = tables.render(["a", "bb"], [[1, "x"], ["long", 2.5]], style="text")
  assert text.splitlines() == ["a      bb", "1       x", "long  2.5"]
  with pytest.raises(ValueError, match="a row has 1 cells, the header 2"):
    tables.render(["a", "b"], [[1]])
  with pytest.raises(ValueError, match="style must be"):
    tables.render(["a"], [[1]], style="html")


def test_readme_table_from_a_results_file(tmp_path, capsys):
  results = {
    "headline": "valid",
    "num_samples": 4,
    "metrics": {"hard": {"ipr_uniform": {"valid": [0.25, 0.5, 0.75]}, "matched": {"valid": [0.5]}}},
    "nfe": {"hard": {"ipr_uniform": [10, 20, 20], "matched": [50]}},
  }
  path = tmp_path / "results.json"
  path.write_text(json.dumps(results))
  readme_table.main(["--results", str(path)])
  lines = capsys.readouterr().out.splitlines()
  assert lines[2].startswith("| hard | 4 | ipr_uniform | 25.0% | - |")
  assert lines[2].endswith("| 75.0% (round 2) | 50 |") and lines[3].endswith("| 50.0% | 50 |")
  with pytest.raises(SystemExit, match="--results"):
    readme_table.main([])


def test_preflight_compiles_without_data_and_reports_costs():
  """--mode preflight's measure: the smoke config's train step and refine call compile from
  shape stand-ins; FLOPs and per-device bytes are positive, refine's FLOPs are one call's times
  the budget's calls, and the report states the time lower bound at a given peak."""
  from experiments import preflight
  from experiments.configs import sudoku_symbolic

  config = sudoku_symbolic.get_config("smoke")
  rep = preflight.measure(config)
  assert rep["param_bytes"] > 0 and rep["train"]["flops"] > 0 and rep["refine"]["flops"] > 0
  assert rep["train"]["bytes"]["argument"] > 0 and rep["refine"]["rounds"] == 2
  refine = rep["refine"]
  assert refine["flops"] == refine["flops_per_call"] * refine["network_calls"] > 0
  text = preflight.report(rep, peak_tflops=100.0)
  assert "ms at peak (lower bound)" in text and "train (batch 8)" in text


def test_peer_key_maps_every_reference_key_once_and_names_a_stranger():
  """experiments.peers' key map (no torch needed): the reference UNet's keys onto the peer's
  module tree, one to one, for a config with channel changes and attention."""
  from experiments import peers
  from ipr_jax import denoisers
  from ipr_jax.importers import srm_unet

  cfg = denoisers.UNetConfig(24, 24, 3, 8, widths=(32, 64), attention=(False, True))
  entries, aliases = srm_unet.layout(cfg)
  keys = [e.ref_key for e in entries] + list(aliases)
  mapped = {peers.peer_key(k) for k in keys}
  assert len(mapped) == len(keys)
  assert "t_emb.mlp.0.weight" in mapped and "encoder.blocks.0.0.weight" in mapped
  assert not any(k.startswith(("model.", "time_embedding.")) for k in mapped)
  with pytest.raises(ValueError, match="not a key of the reference UNet"):
    peers.peer_key("ema_denoiser.n_averaged")


def test_peer_speed_names_the_missing_extra():
  try:
    import spatialreasoners  # noqa: F401
  except ImportError:
    pass
  else:
    pytest.skip("the peers extra is installed here")
  from experiments.studies import peer_speed

  with pytest.raises(SystemExit, match=r'pip install -e "\.\[peers\]"'):
    peer_speed.main(["--size", "small"])


def test_steps_plot_tables_and_plots_points_and_names_bad_ones(tmp_path, capsys):
  from experiments.tools import steps_plot

  def results(curve, matched):
    metrics = {
      "ipr_uncertainty": {"valid": curve},
      "compute_matched_21_steps": {"valid": [matched]},
    }
    return {"headline": "valid", "metrics": {"hard": metrics}}

  paths = []
  for i, (curve, matched) in enumerate((([0.1, 0.3], 0.15), ([0.2, 0.5], 0.25))):
    paths.append(tmp_path / f"r{i}.json")
    paths[-1].write_text(json.dumps(results(curve, matched)))
  out = tmp_path / "steps.png"
  steps_plot.main(
    ["--point", f"a, b,15000,{paths[1]}", "--point", f"a, b,6000,{paths[0]}", "--out", str(out)]
  )
  lines = capsys.readouterr().out.splitlines()
  assert lines[2] == "| a, b | 6,000 | 10.0% | 30.0% (round 1) | 15.0% |"  # sorted by steps
  assert lines[3] == "| a, b | 15,000 | 20.0% | 50.0% (round 1) | 25.0% |"
  assert out.stat().st_size > 0
  with pytest.raises(SystemExit, match="LABEL,STEPS,RESULTS_JSON"):
    steps_plot.main(["--point", f"a,x,{paths[0]}"])
  with pytest.raises(SystemExit, match="no 'ipr_uniform' on split 'hard'"):
    steps_plot.main(["--point", f"a,1,{paths[0]}", "--method", "ipr_uniform"])
  with pytest.raises(SystemExit, match="no --point"):
    steps_plot.main([])
