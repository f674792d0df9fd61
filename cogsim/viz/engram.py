"""Engram gate figures: a heat map of the gate per token (one row per Engram layer and branch) and
the probe text itself, each token shaded by its mean gate, laid out as the text reads."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

from cogsim.viz.common import (MONO, TOKEN_WIDTH, colorbar_axes, labels_height, last_cycle, row_width, rows_of, save,
                               set_position_axis, set_token_axis, token_rows_figure)

CMAP = "magma"
COLORBAR_LABEL = "gate value (0 = memory ignored, 1 = added)"


def gate_rows(traces: dict[str, dict], nodes: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Stack the last cycle's ``gate`` [1,T,M] of every Engram node: ([rows, T], row names)."""
    rows, names = [], []
    for node in nodes:
        key, _ = last_cycle(traces.get(node, {}), "gate")
        if key is None:
            continue
        gate = traces[node][key][0].float().numpy().T  # [M, T]
        for b, row in enumerate(gate):
            rows.append(row)
            names.append(node if len(gate) == 1 else f"{node} · branch {b}")
    return (np.stack(rows) if rows else np.zeros((0, 0))), names


def _limits(values: np.ndarray) -> tuple[float, float]:
    """The full [0, 1] scale when the gates use it, else the observed range (keeps contrast in
    early training, when every gate sits near 0.5; the colour bar shows which)."""
    lo, hi = float(values.min()), float(values.max())
    if hi - lo >= 0.5:
        return 0.0, 1.0
    pad = max(0.02, 0.05 * (hi - lo))
    return max(0.0, lo - pad), min(1.0, hi + pad)


def plot_gate_heatmap(gates: np.ndarray, names: Sequence[str], labels: Sequence[str], path: str | Path,
                      title: str) -> Path:
    n, t = gates.shape
    rows = rows_of(t)
    width = row_width(rows)
    fig, axes, size = token_rows_figure(len(rows), [0.3 * n + 0.3], width, left=2.0, right=1.4, top=0.65,
                                        labels=labels_height(labels))
    vmin, vmax = _limits(gates)
    for (s, e), (ax,) in zip(rows, axes):
        im = ax.imshow(gates[:, s:e], aspect="auto", cmap=CMAP, vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_xlim(-0.5, width / TOKEN_WIDTH - 0.5)
        ax.set_yticks(range(n))
        ax.set_yticklabels(names, fontsize=9)
        set_token_axis(ax, labels, s, e)
        set_position_axis(ax.secondary_xaxis("top"), s, e)
    fig.suptitle(title, fontsize=12, x=0.02, ha="left", y=1 - 0.1 / size[1], va="top")
    bar = fig.colorbar(im, cax=colorbar_axes(fig, size, 2.0, width, 0.65, max(0.3 * n + 0.3, 1.3)))
    bar.set_label("gate value\n(0 = memory ignored,\n1 = added)", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    return save(fig, path)


def _layout(tokens: Sequence[str], tab: int = 4) -> list[tuple[int, int, str, int]]:
    """Place tokens as the text reads: (line, column, shown text, token index) pieces; a newline
    is drawn as ↵ at the end of its line."""
    pieces, line, col = [], 0, 0
    for i, tok in enumerate(tokens):
        parts = tok.replace("\t", " " * tab).split("\n")
        for j, part in enumerate(parts):
            if j > 0:
                pieces.append((line, col, "↵", i))
                line, col = line + 1, 0
            if part:
                shown = part.replace("\r", "\\r")
                pieces.append((line, col, shown, i))
                col += len(shown)
    return pieces


def plot_gate_text(gates: np.ndarray, tokens: Sequence[str], path: str | Path, title: str,
                   max_lines: int = 40) -> Path:
    """``gates`` [T]: one value per token (mean over layers and branches)."""
    pieces = _layout(tokens)
    if pieces and pieces[-1][0] >= max_lines:
        title += f" (first {max_lines} lines)"
        pieces = [p for p in pieces if p[0] < max_lines]
    lines = 1 + max((p[0] for p in pieces), default=0)
    cols = max((p[1] + len(p[2]) for p in pieces), default=1)
    size = 10.0
    char_w, line_h = 0.6 * size / 72, 1.45 * size / 72  # inches per character / per line
    fig_w, fig_h = max(7.0, cols * char_w + 1.0), lines * line_h + 1.25
    fig = plt.figure(figsize=(fig_w, fig_h))
    ax = fig.add_axes((0.4 / fig_w, 0.8 / fig_h, cols * char_w / fig_w, lines * line_h / fig_h))
    ax.set_xlim(0, cols)
    ax.set_ylim(lines, 0)
    ax.axis("off")
    vmin, vmax = _limits(gates)
    cmap = plt.get_cmap(CMAP)
    norm = plt.Normalize(vmin, vmax)
    for line, col, text, i in pieces:
        value = norm(gates[i])
        ax.add_patch(Rectangle((col, line + 0.06), len(text), 0.88, facecolor=cmap(value), edgecolor="white",
                               linewidth=0.8))  # white edges show where tokens meet
        ax.text(col, line + 0.5, text, fontsize=size, fontfamily=MONO, va="center", ha="left",
                color="white" if value < 0.6 else "black")
    fig.suptitle(title, fontsize=11, x=0.4 / fig_w, y=1 - 0.1 / fig_h, ha="left", va="top")
    cax = fig.add_axes((0.4 / fig_w, 0.38 / fig_h, 4.5 / fig_w, 0.1 / fig_h))
    bar = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), cax=cax, orientation="horizontal")
    bar.set_label("mean " + COLORBAR_LABEL, fontsize=8)
    bar.ax.tick_params(labelsize=7)
    return save(fig, path)
