"""Linear warmup then cosine decay to ``min_lr_ratio`` of the peak learning rate."""
from __future__ import annotations

import math

from cogsim.settings import TrainSettings


def lr_at(step: int, s: TrainSettings) -> float:
    """Learning rate for optimizer step ``step`` (0-based) of ``s.steps``."""
    if s.warmup and step < s.warmup:
        return s.lr * (step + 1) / s.warmup
    span = max(1, s.steps - s.warmup)
    progress = min(1.0, (step - s.warmup) / span)
    return s.lr * (s.min_lr_ratio + (1 - s.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))
