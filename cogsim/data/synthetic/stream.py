"""Batches of a synthetic task as tensors: the training stream (batch i at step i, so the state to
checkpoint is the step) and the validation batches (their own stream, the same at every evaluation
except for the task's phase at that step)."""
from __future__ import annotations

import numpy as np
import torch

from cogsim.data.synthetic.base import TRAIN, VALIDATION, Task


class TaskSampler:
    """``next()`` → (inputs, targets) LongTensors [B, T]; fresh every step, fixed by the seed."""

    def __init__(self, task: Task, batch_size: int) -> None:
        self.task, self.batch_size, self.index = task, batch_size, 0

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.task.batch(TRAIN, self.index, self.batch_size)
        self.index += 1
        return torch.from_numpy(x), torch.from_numpy(y)

    def state(self) -> torch.Tensor:
        return torch.tensor([self.index], dtype=torch.int64)

    def load_state(self, state: torch.Tensor) -> None:
        self.index = int(state[0])


def validation_batches(task: Task, batches: int, batch_size: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``batches × batch_size`` validation rows (inputs, targets) as the task stands at ``step``."""
    parts = [task.batch(VALIDATION, i, batch_size, step=step) for i in range(batches)]
    return torch.from_numpy(np.concatenate([p[0] for p in parts])), torch.from_numpy(np.concatenate([p[1] for p in parts]))
