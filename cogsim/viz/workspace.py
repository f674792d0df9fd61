"""Workspace competition figure: per position, every candidate module's bid (colour) with the
winners marked, and which candidate holds each slot of the workspace."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from cogsim.viz.common import (TOKEN_WIDTH, colorbar_axes, cycle_note, labels_height, last_cycle, row_width, rows_of,
                               save, set_position_axis, set_token_axis, token_rows_figure)

#: slot owner colours: grey for the slot's initial content, then one colour per candidate
INITIAL = "#d9d9d9"
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]


def candidate_names(model, node: str) -> list[str]:
    """Names of a workspace node's candidates in edge order (the source node of each edge)."""
    names = list(getattr(model.nodes[node], "candidate_names", []) or [])
    if names:
        return names
    edges = model.plan.incoming.get(node, {}).get("candidates", [])
    srcs = [e.src for e in edges]
    return [f"{e.src}.{e.src_port}" if srcs.count(e.src) > 1 else e.src for e in edges]


def plot_workspace(traces: dict, labels: Sequence[str], names: Sequence[str], path: str | Path,
                   title: str, cycles: int = 1) -> Path:
    """``traces``: one workspace node's traces (``bids`` [1,T,M], ``winners`` [1,T,M] bool,
    ``slot_owner`` [1,T,K]); the last cognitive cycle is drawn."""
    key, cycle = last_cycle(traces, "bids")
    bids = traces[key][0].float().numpy().T  # [M, T]
    winners = traces[last_cycle(traces, "winners")[0]][0].numpy().T.astype(bool)
    owner_key = last_cycle(traces, "slot_owner")[0]
    owners = traces[owner_key][0].numpy().T if owner_key else None  # [K, T]
    m, t = bids.shape
    names = list(names) if len(names) == m else [f"candidate {i}" for i in range(m)]
    k = owners.shape[0] if owners is not None else 0
    rows = rows_of(t)
    width = row_width(rows)
    panels = [0.3 * m + 0.1, 0.25 * k + 0.1] if k else [0.3 * m + 0.1]
    left, right = 1.9, 1.3
    n_handles = 1 + (1 + m if k else 0)  # legend: winner marker, initial content, one per candidate
    ncol = min(n_handles, max(1, int((left + width) / 1.9)))
    top = 0.8 + 0.2 * -(-n_handles // ncol)
    fig, axes, size = token_rows_figure(len(rows), panels, width, left=left, right=right, top=top,
                                        labels=labels_height(labels))
    vmax = max(float(bids.max()), 1e-6)
    cmap = ListedColormap([INITIAL] + PALETTE[: max(m, 1)])
    for (s, e), row in zip(rows, axes):
        ax = row[0]
        im = ax.imshow(bids[:, s:e], aspect="auto", cmap="viridis", vmin=0.0, vmax=vmax, interpolation="nearest")
        ys, xs = np.nonzero(winners[:, s:e])
        ax.scatter(xs, ys, s=22, marker="o", facecolor="white", edgecolor="black", linewidth=0.8, zorder=3)
        ax.set_yticks(range(m))
        ax.set_yticklabels(names, fontsize=9)
        ax.set_xlim(-0.5, width / TOKEN_WIDTH - 0.5)
        set_position_axis(ax, s, e)
        ax.set_ylabel("bids", fontsize=9)
        if k:
            ax2 = row[1]
            ax2.imshow(owners[:, s:e] + 1, aspect="auto", cmap=cmap, vmin=-0.5, vmax=m + 0.5, interpolation="nearest")
            ax2.set_yticks(range(k))
            ax2.set_yticklabels([f"slot {j}" for j in range(k)], fontsize=8)
            ax2.set_xlim(-0.5, width / TOKEN_WIDTH - 0.5)
            ax2.set_ylabel("slot owner", fontsize=9)
            set_token_axis(ax2, labels, s, e)
        else:
            ax.xaxis.set_ticks_position("bottom")
            set_token_axis(ax, labels, s, e)
    fig_w, fig_h = size
    fig.suptitle(title + cycle_note(cycle, cycles), fontsize=12, x=0.02, ha="left", y=1 - 0.1 / fig_h, va="top")
    bar = fig.colorbar(im, cax=colorbar_axes(fig, size, left, width, top, max(panels[0], 1.2)))
    bar.set_label("bid (sums to 1\nover candidates)", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    handles = [Line2D([], [], ls="none", marker="o", markerfacecolor="white", markeredgecolor="black",
                      label="winner: writes at this position")]
    if k:
        handles += [Patch(facecolor=INITIAL, edgecolor="#888888", label="initial content")]
        handles += [Patch(facecolor=PALETTE[i % len(PALETTE)], label=n) for i, n in enumerate(names)]
    fig.legend(handles=handles, loc="upper left", ncol=ncol, fontsize=8,
               frameon=False, bbox_to_anchor=(left / fig_w, 1 - 0.4 / fig_h), handlelength=1.2)
    return save(fig, path)
