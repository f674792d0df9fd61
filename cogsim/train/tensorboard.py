"""TensorBoard event files beside ``metrics.jsonl`` (``train.tensorboard: true`` or ``run --tensorboard``).

Optional: written with ``torch.utils.tensorboard`` when the ``tensorboard`` package is installed; a run
without it goes on with ``metrics.jsonl`` alone (the command says so in one line).
"""
from __future__ import annotations

import math
from pathlib import Path

FOLDER = "tensorboard"  # inside the run folder
MISSING = ("the tensorboard package is not installed (pip install tensorboard); "
           "the metrics go to metrics.jsonl only")


def available() -> bool:
    try:
        import torch.utils.tensorboard  # noqa: F401  (raises ImportError without the tensorboard package)
    except ImportError:
        return False
    return True


def tag(key: str) -> str:
    """Metric name → TensorBoard tag, grouped: ``val_loss`` → ``val/loss``, ``loss`` → ``train/loss``."""
    return f"val/{key[4:]}" if key.startswith("val_") else f"train/{key}"


class EventWriter:
    """Writes each metrics row's numbers as scalars at the row's step."""

    def __init__(self, run_dir: Path, start_step: int = 0) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # on resume, drop events a killed run wrote after its checkpoint (they are trained again)
        self.writer = SummaryWriter(str(Path(run_dir) / FOLDER), purge_step=start_step + 1 if start_step else None)

    def add(self, row: dict) -> None:
        for key, value in row.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool) \
                    and math.isfinite(value):
                self.writer.add_scalar(tag(key), value, row["step"])

    def close(self) -> None:
        self.writer.close()


def open_writer(run_dir: Path, start_step: int = 0) -> EventWriter | None:
    """An event writer for the run folder, or None without the tensorboard package."""
    return EventWriter(run_dir, start_step) if available() else None


__all__ = ["FOLDER", "MISSING", "EventWriter", "available", "open_writer", "tag"]
