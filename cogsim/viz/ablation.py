"""The ablation comparison figure: per metric, every variant's value per seed with mean ± standard
deviation (left), and its paired difference against the reference — the first variant: the full
architecture of an ablation, the floor arm of a task suite — with the 95% confidence interval
(right; green = better than the reference, red = worse, grey = the interval includes 0)."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from cogsim.ablation.tables import LABELS, digits  # noqa: E402

COLORS = {"better": "#2e7d32", "worse": "#c62828", "unclear": "#757575", "full": "#1f4e9a", "variant": "#424242"}


def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def plot_ablation(summary: list[dict], rows: list[dict], path: str | Path, title: str = "") -> Path:
    """Draw ``summary`` (rows of :func:`cogsim.ablation.tables.summarize`) and the per-run
    ``rows`` into one PNG at ``path``."""
    metrics = list(dict.fromkeys(r["metric"] for r in summary))
    variants = list(dict.fromkeys(r["variant"] for r in summary))
    if not metrics:
        raise ValueError("nothing to plot: the summary has no metric with a value")
    cells = {(r["variant"], r["metric"]): r for r in summary}
    reference = variants[0]
    ys = {v: len(variants) - 1 - i for i, v in enumerate(variants)}  # first variant on top
    height = 0.42 * len(variants) + 0.9
    fig, axes = plt.subplots(len(metrics), 2, figsize=(11, height * len(metrics) + 0.8), squeeze=False)
    for k, metric in enumerate(metrics):
        ax_abs, ax_diff = axes[k]
        better = cells[(variants[0], metric)]["better"]
        for v in variants:
            y, c = ys[v], cells.get((v, metric))
            values = [r.get(metric) for r in rows if r["variant"] == v and _finite(r.get(metric))]
            ax_abs.scatter(values, [y] * len(values), s=14, color="#9e9e9e", zorder=2, label=None)
            missing = sum(1 for r in rows if r["variant"] == v) - len(values)
            if missing:  # seeds without a value (e.g. never recovered) would otherwise just not show
                ax_abs.annotate(f"n/a in {missing} of {missing + len(values)} seeds", (0.99, y),
                                xycoords=("axes fraction", "data"), ha="right", va="center", fontsize=7.5,
                                color=COLORS["unclear"])
            if c and _finite(c["mean"]):
                err = c["std"] if _finite(c["std"]) else 0.0
                color = COLORS["full"] if v == reference else COLORS["variant"]
                ax_abs.errorbar(c["mean"], y, xerr=err, fmt="D", ms=5, color=color, capsize=3, zorder=3)
            if v == reference or not c or not _finite(c.get("diff")):
                continue
            lo, hi, d = c["ci_low"], c["ci_high"], c["diff"]
            sign = 1 if better == "higher" else -1
            if _finite(lo) and (lo > 0 or hi < 0):
                color = COLORS["better"] if d * sign > 0 else COLORS["worse"]
            else:
                color = COLORS["unclear"]
            xerr = [[d - lo], [hi - d]] if _finite(lo) else None
            ax_diff.errorbar(d, y, xerr=xerr, fmt="o", ms=6, color=color, capsize=4, lw=1.6, zorder=3)
            n = digits(metric)
            text = f"{d:+.{n}f}" + (f" [{lo:+.{n}f}, {hi:+.{n}f}]" if _finite(lo) else "")
            ax_diff.annotate(text, (d, y), xytext=(0, 6), textcoords="offset points", ha="center",
                             va="bottom", fontsize=7.5, color=color)
        ax_diff.axvline(0.0, color="#1f4e9a", lw=1, ls="--", zorder=1)
        if not any(_finite(cells.get((v, metric), {}).get("diff")) for v in variants[1:]):
            ax_diff.text(0.5, 0.5, f"no paired difference: {reference} has no value on these seeds",
                         transform=ax_diff.transAxes, ha="center", va="center", fontsize=8.5,
                         color=COLORS["unclear"])
            ax_diff.set_xticks([])
        for ax in (ax_abs, ax_diff):
            ax.set_yticks(list(ys.values()), list(ys.keys()))
            ax.set_ylim(-0.6, len(variants) - 0.25)
            ax.grid(axis="x", alpha=0.3)
        arrow = "higher is better" if better == "higher" else "lower is better"
        ax_abs.set_title(f"{LABELS.get(metric, metric)} — {arrow}", fontsize=10, loc="left")
        ax_diff.set_title(f"Δ vs {reference} (95% CI)", fontsize=10, loc="left")
        ax_diff.tick_params(labelleft=False)
    if title:
        fig.suptitle(title, fontsize=12, x=0.01, ha="left")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


__all__ = ["plot_ablation"]
