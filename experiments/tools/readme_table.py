"""Print the README results table (markdown) from results.json files.

python -m experiments.tools.readme_table --results runs/sudoku_cpu/results.json[,more.json]
"""

from __future__ import annotations

import json
import sys

import numpy as np
from absl import flags

from experiments import common, plots, tables

SHOWN = (0, 5, 10, 15, 20, 30)


def table(results: dict, metric: str | None = None) -> str:
  """Markdown rows per split and method: `metric` (default the results' headline) at rounds
  0, 5, 10, 15, 20, 30 where the curve scored them, the last round, and the NFE per item."""
  metric = metric or results.get("headline", "valid")
  header = ["split", "items", "method", *(f"round {r}" for r in SHOWN)]
  header += ["last round", "NFE per item (batch max)"]
  rows = []
  for split, methods in results["metrics"].items():
    for method, curves in methods.items():
      ys, at = curves[metric], plots.scored_rounds(results, split, method)
      nfe = int(np.sum(results["nfe"][split][method]))
      by_round = dict(zip(at, ys))
      cells = [f"{100 * by_round[r]:.1f}%" if r in by_round else "-" for r in SHOWN]
      last = f"{100 * ys[-1]:.1f}% (round {at[-1]})" if len(ys) > 1 else f"{100 * ys[0]:.1f}%"
      rows.append([split, results["num_samples"], method, *cells, last, nfe])
  return tables.render(header, rows)


def define_flags(f):
  flags.DEFINE_list("results", [], "results.json files (comma list)", flag_values=f)
  flags.DEFINE_string("metric", None, "default: each file's headline", flag_values=f)


def main(argv=None):
  argv = sys.argv[1:] if argv is None else list(argv)
  args = common.parse_flags(define_flags, argv, "experiments.tools.readme_table", __doc__)
  if not args.results:
    raise SystemExit("experiments.tools.readme_table: name the files with --results")
  for path in args.results:
    print(table(json.load(open(path)), args.metric))


if __name__ == "__main__":
  main()
