"""The one table printer of the experiments: rows of cells as markdown (README, docs/results) or
as aligned plain text (terminal). Callers format their cells; this lays them out."""

from __future__ import annotations


def render(header, rows, style: str = "markdown") -> str:
  """`header` [str] and `rows` [[cell]] (cells str()-ed) as a markdown table or, with style
  "text", columns padded to their widest cell (the first left-aligned, the rest right)."""
  if style not in ("markdown", "text"):
    raise ValueError(f"style must be markdown or text, got {style!r}")
  header = [str(h) for h in header]
  rows = [[str(c) for c in r] for r in rows]
  bad = [r for r in rows if len(r) != len(header)]
  if bad:
    raise ValueError(f"a row has {len(bad[0])} cells, the header {len(header)}: {bad[0]}")
  if style == "markdown":
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
  widths = [max(len(c) for c in col) for col in zip(header, *rows)]

  def line(cells):
    return "  ".join(
      c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
    ).rstrip()

  return "\n".join([line(header)] + [line(r) for r in rows])
