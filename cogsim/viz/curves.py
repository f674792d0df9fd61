"""Training curves from ``metrics.jsonl``: train and validation loss, and validation bits per byte
(text) or answer accuracy (synthetic tasks)."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from cogsim.viz.common import save


def has_curves(rows: list[dict]) -> bool:
    return any("loss" in r for r in rows) or any("val_loss" in r for r in rows)


def plot_curves(rows: list[dict], path: str | Path, title: str) -> Path:
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    val = [(r["step"], r["val_loss"], r.get("val_bpb")) for r in rows if "val_loss" in r]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4))
    if train:
        ax.plot(*zip(*train), color="#3182bd", lw=1.2, label="train loss (mean over the logging window)")
    if val:
        ax.plot([v[0] for v in val], [v[1] for v in val], "o-", color="#e6550d", lw=1.5, ms=4,
                label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats per token)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    bpb = [(v[0], v[2]) for v in val if v[2] is not None]
    if not bpb and any("task_accuracy" in r for r in rows):
        _accuracy(bx, rows)
    elif bpb:
        bx.plot(*zip(*bpb), "o-", color="#31a354", lw=1.5, ms=4)
        last = bpb[-1]
        bx.annotate(f"{last[1]:.3f}", last, textcoords="offset points", xytext=(-4, 8), fontsize=9, ha="right")
        bx.set_ylabel("validation bits per byte")
    bx.set_xlabel("step")
    bx.grid(alpha=0.3)
    fig.suptitle(title, fontsize=12, x=0.02, ha="left")
    fig.tight_layout()
    return save(fig, path)


def _accuracy(ax, rows: list[dict]) -> None:
    """Answer accuracy of a synthetic task: online on the training batches and on validation."""
    train = [(r["step"], r["train_accuracy"]) for r in rows if "train_accuracy" in r]
    val = [(r["step"], r["task_accuracy"]) for r in rows if "task_accuracy" in r]
    if train:
        ax.plot(*zip(*train), color="#3182bd", lw=1.2, label="training batches (before each update)")
    ax.plot(*zip(*val), "o-", color="#31a354", lw=1.5, ms=4, label="validation")
    ax.annotate(f"{val[-1][1]:.3f}", val[-1], textcoords="offset points", xytext=(-4, 8), fontsize=9, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("answer accuracy")
    ax.legend(fontsize=8)
