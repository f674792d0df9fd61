"""Helpers shared by the run figures: readable token labels, wrapping long texts into rows of
positions, picking a trace's last cognitive cycle, and saving a figure."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

#: invisible characters made visible on token axes
VISIBLE = {"\n": "↵", "\r": "\\r", "\t": "⇥", " ": "·"}
#: monospace font for token strings (shipped with matplotlib, has the glyphs above)
MONO = "DejaVu Sans Mono"
#: positions per row of a wrapped token axis
ROW_TOKENS = 64
#: inches per position on a token axis
TOKEN_WIDTH = 0.2


def escape_token(text: str, limit: int = 10) -> str:
    """A token string with whitespace made visible (↵ newline, · space, ⇥ tab), cut to ``limit``."""
    shown = "".join(VISIBLE.get(c, c) for c in text)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def token_strings(tokenizer, ids: Sequence[int]) -> list[str]:
    """The text each id stands for, decoded alone. A byte-level piece of a multi-byte character
    decodes to U+FFFD; it is shown as its raw byte-level token string instead."""
    out = []
    for i in ids:
        text = tokenizer.decode([int(i)], skip_special_tokens=False)
        if not text or "\ufffd" in text:
            text = tokenizer.id_to_token(int(i)) or f"<{int(i)}>"
        out.append(text)
    return out


def token_labels(tokens: Sequence[str], limit: int = 10) -> list[str]:
    return [escape_token(t, limit) for t in tokens]


def rows_of(length: int, per_row: int = ROW_TOKENS) -> list[tuple[int, int]]:
    """[start, end) of each row when ``length`` positions wrap at ``per_row`` (rows of equal size)."""
    if length <= 0:
        return []
    n = -(-length // per_row)
    size = -(-length // n)
    return [(s, min(length, s + size)) for s in range(0, length, size)]


def row_width(rows: list[tuple[int, int]], least: int = 32) -> float:
    """Inches of a token axis holding the longest row (at least ``least`` positions wide, so short
    texts keep the same cell size and room for legends)."""
    return max([least] + [e - s for s, e in rows]) * TOKEN_WIDTH


_CYCLE = re.compile(r"^(?P<name>.+)@cycle(?P<n>\d+)$")


def last_cycle(traces: dict, name: str) -> tuple[str | None, int]:
    """Key of the last cognitive cycle's trace ``name`` (``name`` or ``name@cycleN``) and N."""
    best, cycle = (name, 0) if name in traces else (None, -1)
    for key in traces:
        m = _CYCLE.match(key)
        if m and m["name"] == name and int(m["n"]) > cycle:
            best, cycle = key, int(m["n"])
    return best, max(cycle, 0)


def cycle_note(cycle: int, cycles: int) -> str:
    return f" — cognitive cycle {cycle + 1} of {cycles}" if cycles > 1 else ""


def set_token_axis(ax, labels: Sequence[str], start: int, end: int, fontsize: float = 8) -> None:
    """Token strings under the cells of positions [start, end) (one label per column)."""
    ax.set_xticks(range(end - start))
    ax.set_xticklabels(labels[start:end], rotation=90, fontsize=fontsize, fontfamily=MONO)
    ax.tick_params(axis="x", length=0, pad=2)


def set_position_axis(ax, start: int, end: int, every: int = 8) -> None:
    """Position numbers along the top of an axis whose columns are positions [start, end)."""
    ticks = [p for p in range(start, end) if p % every == 0]
    ax.xaxis.set_ticks_position("top")
    ax.set_xticks([p - start for p in ticks])
    ax.set_xticklabels([str(p) for p in ticks], fontsize=7, color="#555555")
    ax.tick_params(axis="x", length=2, pad=1)


def labels_height(labels: Sequence[str], fontsize: float = 8) -> float:
    """Inches under a token axis for its rotated labels and the next row's position numbers."""
    longest = max((len(t) for t in labels), default=1)
    return 0.45 + longest * 0.62 * fontsize / 72


def token_rows_figure(n_rows: int, panels: Sequence[float], width: float, *, left: float = 1.9, right: float = 1.0,
                      top: float = 0.9, labels: float = 1.2, gap: float = 0.1, bottom: float = 0.0):
    """A figure of ``n_rows`` groups of stacked panels (heights in inches) sharing a token axis of
    ``width`` inches; ``labels`` inches under each group hold its token strings, ``bottom`` inches
    stay free below. Returns (figure, axes per row and panel, figure size in inches)."""
    group = sum(panels) + gap * (len(panels) - 1)
    fig_w, fig_h = left + width + right, top + n_rows * (group + labels) + bottom
    fig = plt.figure(figsize=(fig_w, fig_h))
    rows, y = [], fig_h - top
    for _ in range(n_rows):
        row = []
        for h in panels:
            y -= h
            row.append(fig.add_axes((left / fig_w, y / fig_h, width / fig_w, h / fig_h)))
            y -= gap
        rows.append(row)
        y -= labels - gap
    return fig, rows, (fig_w, fig_h)


def colorbar_axes(fig, size: tuple[float, float], left: float, width: float, top: float, height: float):
    """An axes for a vertical colour bar just right of a plot area (inches from the left/top)."""
    fig_w, fig_h = size
    return fig.add_axes(((left + width + 0.15) / fig_w, (fig_h - top - height) / fig_h, 0.15 / fig_w, height / fig_h))


def save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
