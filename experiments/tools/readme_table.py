"""Print the README results table (markdown) from results.json files.

python -m experiments.tools.readme_table runs/sudoku_cpu/results.json
"""

from __future__ import annotations

import json
import sys

import numpy as np


SHOWN = (0, 5, 10, 15, 20, 30)


def table(results: dict, metric: str | None = None) -> str:
  """Markdown rows per split and method: `metric` (default the results' headline) at rounds
  0, 5, 10, 15, 20, 30 where the curve has them, the last round, and the NFE per item."""
  metric = metric or results.get("headline", "valid")
  head = " | ".join(f"round {r}" for r in SHOWN)
  rows = [
    f"| split | items | method | {head} | last round | NFE per item (batch max) |",
    "|---|---|---|" + "---|" * len(SHOWN) + "---|---|",
  ]
  for split, methods in results["metrics"].items():
    for method, curves in methods.items():
      ys = curves[metric]
      nfe = int(np.sum(results["nfe"][split][method]))
      cells = " | ".join(
        f"{100 * ys[r]:.1f}%" if r < len(ys) and (len(ys) > 1 or r == 0) else "-" for r in SHOWN
      )
      last = f"{100 * ys[-1]:.1f}% (round {len(ys) - 1})" if len(ys) > 1 else f"{100 * ys[0]:.1f}%"
      rows.append(f"| {split} | {results['num_samples']} | {method} | {cells} | {last} | {nfe} |")
  return "\n".join(rows)


if __name__ == "__main__":
  for path in sys.argv[1:]:
    print(table(json.load(open(path))))
