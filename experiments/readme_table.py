"""Print the README results table (markdown) from results.json files.

    python -m experiments.readme_table runs/sudoku_cpu/results.json
"""
from __future__ import annotations

import json
import sys

import numpy as np


def table(results: dict, metric: str = "valid") -> str:
  rows = ["| split | puzzles | method | round 0 | round 5 | round 10 | last round | NFE per puzzle (batch max) |",
          "|---|---|---|---|---|---|---|---|"]
  for split, methods in results["metrics"].items():
    for method, curves in methods.items():
      ys = curves[metric]
      nfe = int(np.sum(results["nfe"][split][method]))
      pick = lambda r: f"{100 * ys[r]:.1f}%" if r < len(ys) else "-"
      last = f"{100 * ys[-1]:.1f}% (round {len(ys) - 1})" if len(ys) > 1 else f"{100 * ys[0]:.1f}%"
      rows.append(f"| {split} | {results['num_samples']} | {method} | {pick(0)} | "
                  f"{pick(5) if len(ys) > 1 else '-'} | {pick(10) if len(ys) > 1 else '-'} | "
                  f"{last} | {nfe} |")
  return "\n".join(rows)


if __name__ == "__main__":
  for path in sys.argv[1:]:
    print(table(json.load(open(path))))
