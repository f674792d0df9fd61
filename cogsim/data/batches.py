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


def task_stream(tokenizer, texts: list[str], eot_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Generated task texts encoded and joined by the end-of-text token: (tokens, start of each text)."""
    parts, starts, pos = [], [], 0
    for enc in tokenizer.encode_batch(texts, add_special_tokens=False):
        starts.append(pos)
        parts.append(np.asarray(enc.ids + [eot_id], dtype=np.int64))
        pos += len(parts[-1])
    tokens = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    return tokens, np.asarray(starts, dtype=np.int64)


class TaskMixSampler(WindowSampler):
    """A :class:`WindowSampler` whose rows are, each with probability ``share``, replaced by a window
    of generated task text starting at the beginning of a task instance (``data.task_mix``).

    Every batch draws the same random numbers whatever the outcome, from the sampler's one seeded
    generator, so runs with the same seed see the same data and checkpoints resume exactly."""

    def __init__(self, tokens: np.ndarray, seq_len: int, batch_size: int, seed: int, task_tokens: np.ndarray,
                 task_starts: np.ndarray, share: float) -> None:
        super().__init__(tokens, seq_len, batch_size, seed)
        if not 0.0 <= share <= 1.0:
            raise CogsimError(f"data.task_mix must be in [0, 1], got {share}")
        usable = task_starts[task_starts + seq_len + 1 <= len(task_tokens)]
        if share > 0 and len(usable) == 0:
            raise CogsimError(f"the generated task text ({len(task_tokens)} tokens) is shorter than one window "
                              f"of {seq_len + 1} tokens")
        self.task_tokens = torch.from_numpy(task_tokens.astype(np.int64))
        self.task_starts = torch.from_numpy(usable)
        self.share = share

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = super().next()
        if self.share <= 0:
            return x, y
        pick = torch.rand(self.batch_size, generator=self.generator) < self.share
        which = torch.randint(0, len(self.task_starts), (self.batch_size,), generator=self.generator)
        if pick.any():
            idx = self.task_starts[which[pick]][:, None] + torch.arange(self.seq_len + 1)
            window = self.task_tokens[idx]
            x, y = x.clone(), y.clone()
            x[pick], y[pick] = window[:, :-1], window[:, 1:]
        return x, y
