"""Plots beside results.json: metric vs round, metric vs NFE, and a Sudoku strip across rounds."""

from __future__ import annotations

import os

import matplotlib
import matplotlib.lines
import matplotlib.patches
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ipr_jax.evaluation import sudoku as sudoku_eval  # noqa: E402


METRIC_LABELS = {
  "valid": "valid rate (every Sudoku rule holds)",
  "duplicate_count": "duplicates per board",
  "is_color_count_even": "share with every colour count even",
  "numbers_match_objects": "share whose number matches its polygons",
  "are_vertices_uniform": "share with one vertex count",
  "is_clean": "share the cleanliness check accepts",
}


def metric_label(name: str) -> str:
  """A metric's name spelled out for axes and tables (the raw name where none is known)."""
  return METRIC_LABELS.get(name, name.replace("_", " "))


def method_label(method: str) -> str:
  """ipr_uniform -> "IPR, uniform selector"; compute_matched_7_steps -> "compute-matched
  single pass (7 steps per region)"."""
  if method.startswith("ipr_"):
    return f"IPR, {method[4:]} selector"
  if method == "recommended":
    return "IPR, the model's recommended settings"
  if method.startswith("compute_matched_"):
    steps = method[len("compute_matched_") :].split("_")[0]
    return f"compute-matched single pass ({steps} steps per region)"
  return method.replace("_", " ")


def scored_rounds(results: dict, split: str, method: str) -> list:
  """The rounds of a curve's entries: results["scored"] (every file written since it exists);
  in older files results["rounds"] where the curve has one value each (a quickstart's every
  k-th), else 0..n (a split's or a recommended curve's own number of rounds)."""
  n = len(next(iter(results["metrics"][split][method].values())))
  if method in results.get("scored", {}).get(split, {}):
    return list(results["scored"][split][method])
  rounds = results.get("rounds") or []
  return list(rounds) if len(rounds) == n else list(range(n))


def budget_curves(results: dict, metric: str, folder: str) -> list[str]:
  """One PNG per split: `metric` against round (a curve's `scored` rounds, see
  `common.results_record`) and against cumulative NFE, every method."""
  paths = []
  for split, methods in results["metrics"].items():
    fig, (ax_r, ax_n) = plt.subplots(1, 2, figsize=(11, 4.0))
    for method, curves in methods.items():
      ys = curves[metric]
      nfe = np.cumsum(results["nfe"][split][method])
      label = method_label(method)
      if len(ys) == 1:
        ax_r.axhline(ys[0], ls="--", color="gray", label=f"{label}, {nfe[-1]} NFE")
        ax_n.plot(nfe, ys, "s", color="gray", label=label)
      else:
        ax_r.plot(scored_rounds(results, split, method), ys, "o-", ms=3, label=label)
        ax_n.plot(nfe, ys, "o-", ms=3, label=label)
    ax_r.set_xlabel("IPR round (0 = the SRM sample)")
    ax_r.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax_n.set_xlabel("denoiser evaluations (NFE) per sample, cumulative")
    for ax in (ax_r, ax_n):
      ax.set_ylabel(metric_label(metric))
      ax.grid(alpha=0.3)
    ax_r.legend(fontsize=7)
    fig.suptitle(
      f"{results['benchmark']} ({results['variant']}), {split} split: "
      f"{metric_label(metric)}, {results['num_samples']} held-out items"
    )
    fig.tight_layout()
    path = os.path.join(folder, f"{metric}_{split}.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths.append(path)
  return paths


def _bad_cells(digits: np.ndarray) -> np.ndarray:
  """bool[9, 9]: cells whose digit repeats in their row, column or box."""
  bad = np.zeros((9, 9), bool)
  for r in range(9):
    for c in range(9):
      d = digits[r, c]
      br, bc = 3 * (r // 3), 3 * (c // 3)
      box = digits[br : br + 3, bc : bc + 3]
      bad[r, c] = (
        (digits[r] == d).sum() > 1 or (digits[:, c] == d).sum() > 1 or (box == d).sum() > 1
      )
  return bad


def _finish_strip(fig, axes, path: str, row_labels, legend: list) -> str:
  """Row labels on the left of each row, a legend below, saved to `path`."""
  for s, label in enumerate(row_labels or []):
    axes[s, 0].set_ylabel(label, fontsize=7)
  if legend:
    fig.legend(handles=legend, loc="lower center", ncol=len(legend), fontsize=7, frameon=False)
  fig.tight_layout(rect=(0, 0.06 if legend else 0, 1, 1))
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def sudoku_strip(
  history: np.ndarray,
  givens: np.ndarray,
  path: str,
  rounds=None,
  digits: np.ndarray | None = None,
  row_labels=None,
  round_names=None,
) -> str:
  """One row per sample, one board per round; givens shaded, cells in a violated unit in red.

  history: symbolic samples f32[rounds+1, S, 9, 9, 9], or image boards f32[rounds+1, S, H, W, 1]
  in [-1, 1] with `digits` i32[rounds+1, S, 9, 9] as the evaluator's classifier read them (the
  read digit is printed small in each cell's corner, so a misread is visible). `row_labels`
  name the samples (default "sample i"); `round_names` title the columns (default the indices
  in `rounds`: a history of the shown rounds only names them here).
  """
  n_rounds, n_samples = history.shape[:2]
  rounds = list(range(n_rounds)) if rounds is None else list(rounds)
  round_names = rounds if round_names is None else list(round_names)
  if len(round_names) != len(rounds):
    raise ValueError(f"{len(round_names)} round names for {len(rounds)} shown rounds")
  images = digits is not None
  if not images:
    digits = np.asarray(sudoku_eval.decode_symbolic(history))
  fig, axes = plt.subplots(
    n_samples, len(rounds), figsize=(1.9 * len(rounds), 2.0 * n_samples), squeeze=False
  )
  for s in range(n_samples):
    given = givens[s].reshape(9, 9)
    for k, r in enumerate(rounds):
      ax = axes[s, k]
      d, bad = digits[r, s], _bad_cells(digits[r, s])
      if images:
        ax.imshow(
          np.clip((history[r, s, ..., 0] + 1.0) / 2.0, 0, 1),
          cmap="gray",
          vmin=0,
          vmax=1,
          extent=(-0.5, 8.5, 8.5, -0.5),
        )
        ax.imshow(
          np.where(given, 0.35, 0.0)[..., None] * np.array([[[0.2, 0.5, 1.0, 1.0]]]),
          extent=(-0.5, 8.5, 8.5, -0.5),
        )  # givens: translucent blue
      else:
        ax.imshow(np.where(given, 0.85, 1.0), cmap="gray", vmin=0, vmax=1)
      for i in range(9):
        for j in range(9):
          if images:
            ax.text(
              j + 0.45,
              i + 0.45,
              str(d[i, j]),
              ha="right",
              va="bottom",
              fontsize=3.5,
              color="red" if bad[i, j] else "yellow",
            )
            if bad[i, j]:
              ax.add_patch(
                matplotlib.patches.Rectangle(
                  (j - 0.45, i - 0.45), 0.9, 0.9, fill=False, ec="red", lw=0.8
                )
              )
          else:
            ax.text(
              j,
              i,
              str(d[i, j]),
              ha="center",
              va="center",
              fontsize=6,
              color="red" if bad[i, j] else "black",
              fontweight="bold" if given[i, j] else "normal",
            )
      for g in (2.5, 5.5):
        ax.axhline(g, color="c" if images else "k", lw=0.8)
        ax.axvline(g, color="c" if images else "k", lw=0.8)
      ax.set_xticks([]), ax.set_yticks([])
      title = f"round {round_names[k]}: " + (
        "valid" if not bad.any() else f"{bad.sum()} cells break a rule"
      )
      ax.set_title(title, fontsize=7)
  given_patch = (
    matplotlib.patches.Patch(color=(0.2, 0.5, 1.0, 0.35), label="given cell")
    if images
    else matplotlib.patches.Patch(color="0.85", label="given cell (bold)")
  )
  bad_label = "digit repeated in its row, column or box"
  legend = [
    given_patch,
    matplotlib.patches.Patch(fc="none", ec="red", label=bad_label)
    if images
    else matplotlib.lines.Line2D([], [], ls="none", marker="$9$", color="red", label=bad_label),
  ]
  if images:
    legend.append(
      matplotlib.lines.Line2D(
        [],
        [],
        ls="none",
        marker="$7$",
        color="goldenrod",
        label="digit the evaluator's classifier reads",
      )
    )
  labels = row_labels or [f"sample {s}" for s in range(n_samples)]
  return _finish_strip(fig, axes, path, labels, legend)


def image_strip(
  history: np.ndarray, path: str, rounds, row_labels=None, metrics: dict | None = None
) -> str:
  """history f32[rounds+1, S, H, W, C] in [-1, 1]: one row per sample, one image per round.
  `metrics` {name: f32[rounds+1, S]} (e.g. the headline per round) go in each image's title."""
  n_samples = history.shape[1]
  fig, axes = plt.subplots(
    n_samples, len(rounds), figsize=(1.8 * len(rounds), 1.9 * n_samples), squeeze=False
  )
  for s in range(n_samples):
    for k, r in enumerate(rounds):
      img = np.clip((history[r, s] + 1.0) / 2.0, 0.0, 1.0)
      axes[s, k].imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
      axes[s, k].set_xticks([]), axes[s, k].set_yticks([])
      extra = "".join(
        f"\n{n.replace('_', ' ')}: {'yes' if v[r, s] >= 0.5 else 'no'}"
        for n, v in (metrics or {}).items()
      )  # one image: its raw name (short)
      axes[s, k].set_title(f"round {r}{extra}", fontsize=6)
  labels = row_labels or [f"sample {s}" for s in range(n_samples)]
  return _finish_strip(fig, axes, path, labels, [])


def training_curves(metrics_path: str, path: str) -> str:
  """Loss terms and validation valid rate against step, from DIR/metrics.jsonl."""
  import json

  rows = [json.loads(l) for l in open(metrics_path)]
  fig, (ax_l, ax_v) = plt.subplots(1, 2, figsize=(10, 3.6))
  steps = [r["step"] for r in rows]
  for key in ("loss", "loss_mu"):
    ax_l.plot(
      steps,
      [r[key] for r in rows],
      lw=1,
      label={"loss": "total training loss", "loss_mu": "denoising (mean) loss"}[key],
    )
  ax_l.set_yscale("log"), ax_l.set_xlabel("step"), ax_l.legend(), ax_l.grid(alpha=0.3)
  val = [(r["step"], r["val_valid"], r.get("val_valid_raw")) for r in rows if "val_valid" in r]
  if val:
    ax_v.plot([v[0] for v in val], [v[1] for v in val], "o-", label="EMA params")
    raw = [(v[0], v[2]) for v in val if v[2] is not None]
    if raw:
      ax_v.plot([v[0] for v in raw], [v[1] for v in raw], "s--", label="raw params")
  ax_v.set_xlabel("step"), ax_v.set_ylabel("validation valid rate (round 0)")
  if val:
    ax_v.legend()
  ax_v.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def against_steps(series: dict, split: str, method: str, metric: str, path: str) -> str:
  """`metric` at round 0 (dashed) and after the last round (solid) of `method` on `split`, and
  the compute-matched single pass (dotted) where the results have one, against the denoiser's
  training steps: series {label: [(steps, results dict), ...]}, one colour per label."""
  fig, ax = plt.subplots(figsize=(8.4, 4.0))
  for i, (label, points) in enumerate(series.items()):
    points = sorted(points, key=lambda p: p[0])
    steps = [p[0] for p in points]
    curves = [p[1]["metrics"][split][method][metric] for p in points]
    color = f"C{i}"
    ax.plot(steps, [c[-1] for c in curves], "o-", color=color, label=f"{label}: last round")
    ax.plot(
      steps, [c[0] for c in curves], "s--", color=color, mfc="none", label=f"{label}: round 0"
    )
    matched = [
      (s, m[metric][0])
      for s, (_, r) in zip(steps, points)
      for name, m in r["metrics"][split].items()
      if name.startswith("compute_matched")
    ]
    if matched:
      ax.plot(*zip(*matched), "^:", color=color, mfc="none", label=f"{label}: compute-matched")
  ax.set_xlabel("denoiser training steps"), ax.set_ylabel(metric_label(metric))
  ax.set_title(f"{split}: {method_label(method)}", fontsize=10)
  ax.grid(alpha=0.3), ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path
