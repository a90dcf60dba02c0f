"""Valid rate against the denoiser's training steps, from the results.json of models trained for
different numbers of steps: a markdown table and a plot (round 0, last round, compute-matched).

    python -m experiments.tools.steps_plot --split hard --method ipr_uncertainty \
        --point "real MNIST,6000,docs/results/mnist_sudoku/latent_mnist_results.json" \
        --point "real MNIST,15000,docs/results/mnist_sudoku/latent_mnist_15k_results.json" \
        --out docs/results/mnist_sudoku/valid_vs_steps_hard.png

Each --point is LABEL,STEPS,RESULTS_JSON; points with the same label make one series.
"""

from __future__ import annotations

import json
import sys

from absl import flags

from experiments import common, plots, tables


def define_flags(f):
  flags.DEFINE_multi_string("point", [], "LABEL,STEPS,RESULTS_JSON (repeat)", flag_values=f)
  flags.DEFINE_string("split", "hard", "split of the results", flag_values=f)
  flags.DEFINE_string("method", "ipr_uncertainty", "refine method of the results", flag_values=f)
  flags.DEFINE_string("metric", None, "default: the first results' headline", flag_values=f)
  flags.DEFINE_string("out", None, "the plot's path (default: the table only)", flag_values=f)


def parse(points: list[str], split: str, method: str) -> dict:
  """{label: [(steps, results), ...]} from LABEL,STEPS,PATH strings; ValueError naming the
  point that is malformed or whose results lack the split or the method."""
  series = {}
  for point in points:
    parts = point.rsplit(",", 2)
    if len(parts) != 3 or not parts[1].strip().isdigit():
      raise ValueError(f"--point wants LABEL,STEPS,RESULTS_JSON, got {point!r}")
    label, steps, path = parts[0].strip(), int(parts[1]), parts[2].strip()
    with open(path) as f:
      results = json.load(f)
    have = results.get("metrics", {}).get(split, {})
    if method not in have:
      raise ValueError(f"{path} has no {method!r} on split {split!r} (it has {sorted(have)})")
    series.setdefault(label, []).append((steps, results))
  if not series:
    raise ValueError("no --point given")
  return series


def table(series: dict, split: str, method: str, metric: str) -> str:
  """Markdown rows: label, steps, round 0, last round (its number), compute-matched."""
  rows = []
  for label, points in series.items():
    for steps, r in sorted(points, key=lambda p: p[0]):
      curve = r["metrics"][split][method][metric]
      matched = [
        m[metric][0] for n, m in r["metrics"][split].items() if n.startswith("compute_matched")
      ]
      last = f"{curve[-1]:.1%} (round {plots.scored_rounds(r, split, method)[-1]})"
      rows.append(
        [label, f"{steps:,}", f"{curve[0]:.1%}", last, f"{matched[0]:.1%}" if matched else "-"]
      )
  header = ["model", "training steps", "round 0", "last round", "compute-matched"]
  return tables.render(header, rows)


def main(argv=None):
  argv = sys.argv[1:] if argv is None else list(argv)
  prog = "experiments.tools.steps_plot"
  args = common.parse_flags(define_flags, argv, prog, __doc__)
  try:
    series = parse(args.point, args.split, args.method)
  except (ValueError, OSError) as e:
    raise SystemExit(f"{prog}: {e}") from e
  metric = args.metric or next(iter(series.values()))[0][1].get("headline", "valid")
  print(table(series, args.split, args.method, metric))
  if args.out:
    print(f"wrote {plots.against_steps(series, args.split, args.method, metric, args.out)}")


if __name__ == "__main__":
  main()
