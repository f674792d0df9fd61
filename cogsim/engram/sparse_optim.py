"""Row-wise sparse optimizers for Engram tables: two float32 scalars of state per row, touched rows only.

Row-wise Adam (no first moment) and row-wise Adagrad; the update rules and why the state is per
row are in docs/design.md §5.1. The caller passes the learning rate already multiplied.
"""
from __future__ import annotations

from typing import ClassVar

import torch

#: columns of the per-row state
SECOND_MOMENT, COUNT = 0, 1
STATE_SLOTS = 2


class RowwiseOptimizer:
    """Base: ``update(w, state, grad, lr)`` returns the new rows and their new state."""

    name: ClassVar[str] = ""

    def __init__(self, beta2: float = 0.999, eps: float = 1e-8) -> None:
        if not 0.0 <= beta2 < 1.0:
            raise ValueError(f"beta2: must be in [0, 1), got {beta2}")
        if eps <= 0:
            raise ValueError(f"eps: must be positive, got {eps}")
        self.beta2, self.eps = beta2, eps

    def second_moment(self, s: torch.Tensor, ms: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(new state scalar, denominator scale) for mean squared gradients ``ms`` at counts ``t``."""
        raise NotImplementedError

    @torch.no_grad()
    def update(self, w: torch.Tensor, state: torch.Tensor, grad: torch.Tensor,
               lr: float) -> tuple[torch.Tensor, torch.Tensor]:
        """w, grad: [U, D] float32; state: [U, 2]. Pure: inputs are not modified."""
        grad = grad.to(torch.float32)
        t = state[:, COUNT] + 1
        s, denom_sq = self.second_moment(state[:, SECOND_MOMENT], grad.pow(2).mean(1), t)
        step = grad / (denom_sq.sqrt() + self.eps).unsqueeze(1)
        return w - lr * step, torch.stack([s, t], dim=1)


class RowwiseAdam(RowwiseOptimizer):
    name = "adam"

    def second_moment(self, s, ms, t):
        s = self.beta2 * s + (1.0 - self.beta2) * ms
        return s, s / (1.0 - torch.pow(torch.full_like(t, self.beta2), t))


class RowwiseAdagrad(RowwiseOptimizer):
    name = "adagrad"

    def second_moment(self, s, ms, t):
        s = s + ms
        return s, s


OPTIMIZERS = {cls.name: cls for cls in (RowwiseAdam, RowwiseAdagrad)}


def make_optimizer(name: str, **kwargs) -> RowwiseOptimizer:
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer: expected one of {sorted(OPTIMIZERS)}, got {name!r}")
    return OPTIMIZERS[name](**kwargs)
