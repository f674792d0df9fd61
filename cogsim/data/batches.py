"""Token batches: random training windows from a seeded generator (its state is checkpointed) and
fixed, evenly spaced validation windows."""
from __future__ import annotations

import numpy as np
import torch

from cogsim.errors import CogsimError


class WindowSampler:
    """Random windows of ``seq_len + 1`` tokens → (inputs, targets) LongTensors [B, T]."""

    def __init__(self, tokens: np.ndarray, seq_len: int, batch_size: int, seed: int) -> None:
        if len(tokens) < seq_len + 2:
            raise CogsimError(f"the training split has {len(tokens)} tokens, fewer than seq_len + 2 = "
                              f"{seq_len + 2}; use more data or a smaller --seq-len")
        self.tokens = torch.from_numpy(tokens.astype(np.int64))
        self.seq_len, self.batch_size = seq_len, batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        starts = torch.randint(0, len(self.tokens) - self.seq_len - 1, (self.batch_size,), generator=self.generator)
        idx = starts[:, None] + torch.arange(self.seq_len + 1)
        window = self.tokens[idx]
        return window[:, :-1], window[:, 1:]

    def state(self) -> torch.Tensor:
        return self.generator.get_state()

    def load_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)


def validation_windows(tokens: np.ndarray, seq_len: int, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` windows spread evenly over the validation split (inputs, targets)."""
    if len(tokens) < seq_len + 2:
        raise CogsimError(f"the validation split has {len(tokens)} tokens, fewer than seq_len + 2 = "
                          f"{seq_len + 2}; use more data or a smaller --seq-len")
    last = len(tokens) - seq_len - 1
    starts = np.unique(np.linspace(0, last, num=count).astype(np.int64))
    window = torch.from_numpy(np.stack([tokens[s : s + seq_len + 1] for s in starts]).astype(np.int64))
    return window[:, :-1], window[:, 1:]
