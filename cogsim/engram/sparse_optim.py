"""Row-wise sparse optimizers for Engram tables: two float32 scalars of state per row, touched rows only.

A dense Adam state (two full copies of a table that may be larger than RAM) is out of the question,
so the state of row r is ``[s_r, t_r]``: ``s_r`` a second-moment scalar of the row's gradient and
``t_r`` the number of updates row r has received (rows are touched at different rates, so every
bias correction is per row — the "lazy" convention of sparse Adam). With ``g`` the row's gradient
(summed over its occurrences in the batch) and ``ms = mean_j g_j²``:

- ``adam`` (row-wise Adam, first moment off, β1 = 0: a direction needs a full vector of state)::

      t ← t + 1;  s ← β2·s + (1 − β2)·ms;  ŝ = s / (1 − β2^t);  w ← w − lr · g / (sqrt(ŝ) + eps)

  Its first step moves every element of a row by about ``lr`` (like dense Adam's first step).
- ``adagrad`` (row-wise Adagrad, as FBGEMM's EXACT_ROWWISE_ADAGRAD)::

      t ← t + 1;  s ← s + ms;  w ← w − lr · g / (sqrt(s) + eps)

No weight decay (the paper trains its tables with Adam, 5× the base learning rate, no decay); the
caller passes the already multiplied learning rate. ``t_r > 0`` also marks rows that were ever
written, which lazily initialised (memory-mapped) tables use.
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
