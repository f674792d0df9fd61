"""HTM figure: the temporal memory's raw anomaly per token of a probe text, and its column counts
(active columns, and how many of them were predicted from the tokens before)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from cogsim.viz.common import (TOKEN_WIDTH, labels_height, row_width, rows_of, save, set_position_axis,
                               set_token_axis, token_rows_figure)

#: trace names drawn as counts per token, when a component publishes them (in this order)
COUNT_HINTS = ("active", "predict", "burst", "column", "cell")
COLORS = ["#756bb1", "#31a354", "#e6550d", "#3182bd", "#636363"]
#: legend text of known count traces
LABELS = {"predicted": "columns predicted for the next token"}


def _series(traces: dict, name: str) -> np.ndarray | None:
    v = traces.get(name)
    if v is None or v.dim() != 2 or v.shape[0] != 1:
        return None
    return v[0].float().numpy()


def count_series(traces: dict) -> dict[str, np.ndarray]:
    """Per-token [1, T] traces other than the anomaly scores whose names say they count columns or
    cells (first cycle only: HTM learns once per forward)."""
    out = {}
    for name in sorted(traces):
        if "@cycle" in name or "anomaly" in name or "likelihood" in name:
            continue
        if any(h in name for h in COUNT_HINTS) and (s := _series(traces, name)) is not None:
            out[name] = s
    return out


def plot_htm(traces: dict, labels: Sequence[str], path: str | Path, title: str,
             active_columns: int | None = None) -> Path:
    """``traces``: one HTM node's traces (``anomaly`` [1,T], counts such as ``predicted`` [1,T]);
    ``active_columns``: columns of one token's code, drawn as a reference line over the counts."""
    anomaly = _series(traces, "anomaly")
    if anomaly is None:
        raise ValueError("HTM traces hold no 'anomaly' [1, T]")
    likelihood = next((s for k in ("anomaly_likelihood", "likelihood") if (s := _series(traces, k)) is not None), None)
    counts = count_series(traces)
    t = len(anomaly)
    rows = rows_of(t)
    width = row_width(rows)
    panels = [1.3, 1.1] if counts else [1.3]
    fig, axes, (fig_w, fig_h) = token_rows_figure(len(rows), panels, width, left=1.2, right=0.4, top=1.0,
                                                  labels=labels_height(labels))
    peak = max([1.0, active_columns or 0] + [float(c.max()) for c in counts.values()])
    for (s, e), row in zip(rows, axes):
        ax = row[0]
        x = np.arange(e - s)
        ax.bar(x, anomaly[s:e], width=0.8, color="#d62728", label="raw anomaly (unpredicted share of active columns)")
        if likelihood is not None:
            ax.plot(x, likelihood[s:e], "o-", ms=3, lw=1, color="#333333", label="anomaly likelihood")
        ax.set_ylim(0, 1.05)
        ax.set_xlim(-0.5, width / TOKEN_WIDTH - 0.5)
        ax.set_ylabel("anomaly", fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(axis="y", alpha=0.3)
        set_position_axis(ax, s, e)
        if counts:
            bx = row[1]
            step = 0.8 / len(counts)
            for i, (name, values) in enumerate(counts.items()):
                bx.bar(x - 0.4 + step * (i + 0.5), values[s:e], width=step, color=COLORS[i % len(COLORS)],
                       label=LABELS.get(name, name.replace("_", " ")))
            if active_columns:
                bx.axhline(active_columns, color="#333333", ls="--", lw=0.8,
                           label=f"active columns per token ({active_columns})")
            bx.set_xlim(-0.5, width / TOKEN_WIDTH - 0.5)
            bx.set_ylim(0, peak * 1.08)
            bx.set_ylabel("count", fontsize=8)
            bx.tick_params(axis="y", labelsize=7)
            bx.grid(axis="y", alpha=0.3)
            set_token_axis(bx, labels, s, e)
        else:
            ax.xaxis.set_ticks_position("bottom")
            set_token_axis(ax, labels, s, e)
    handles, names = [], []
    for ax in axes[0]:
        h, n = ax.get_legend_handles_labels()
        handles, names = handles + h, names + n
    fig.legend(handles, names, loc="upper left", ncol=min(len(names), max(1, int(fig_w / 3.2))), fontsize=8,
               frameon=False, bbox_to_anchor=(1.2 / fig_w, 1 - 0.4 / fig_h))
    fig.suptitle(title, fontsize=12, x=0.02, ha="left", y=1 - 0.1 / fig_h, va="top")
    return save(fig, path)
