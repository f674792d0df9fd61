"""Token id → sparse distributed code: ``active`` of ``num_columns`` columns, a deterministic function
of (seed, token id) through counter-based hashing (the columns with the smallest hash of
(seed, token, column)). Distinct tokens share columns only by chance (≈ active²/num_columns), which is
what the temporal memory needs to tell them apart. Codes are computed for the ids seen and cached.
"""
from __future__ import annotations

import torch
from torch import nn

from cogsim.htm.counter_rng import SALT_TOKEN, hash32, hash_fold


class TokenEncoder(nn.Module):
    """``columns(ids)`` → int64 [..., active] (sorted column ids); ``encode(ids)`` → bool [..., num_columns]."""

    def __init__(self, vocab_size: int, num_columns: int, active: int, seed: int = 0,
                 device: str | torch.device | None = None) -> None:
        super().__init__()
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be ≥ 1, got {vocab_size}")
        if not 0 < active <= num_columns:
            raise ValueError(f"active must be in [1, num_columns={num_columns}], got {active}")
        self.vocab_size, self.num_columns, self.active, self.seed = int(vocab_size), int(num_columns), int(active), int(seed)
        dev = torch.device(device) if device is not None else torch.device("cpu")
        # -1 marks codes not computed yet (derived data: not saved, recomputed identically)
        self.register_buffer("table", torch.full((self.vocab_size, self.active), -1, dtype=torch.int64, device=dev),
                             persistent=False)

    def _compute(self, ids: torch.Tensor) -> torch.Tensor:
        cols = torch.arange(self.num_columns, device=ids.device)
        key = hash_fold(hash32(self.seed, SALT_TOKEN, ids)[:, None], cols)
        return torch.sort(key.topk(self.active, dim=1, largest=False).indices, dim=1).values

    def columns(self, ids: torch.Tensor) -> torch.Tensor:
        ids = ids.to(self.table.device).long()
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.vocab_size):
            raise ValueError(f"token ids must be in [0, {self.vocab_size}), got [{int(ids.min())}, {int(ids.max())}]")
        flat = ids.reshape(-1)
        uniq = torch.unique(flat)
        missing = uniq[self.table[uniq, 0] < 0]
        for start in range(0, missing.numel(), 4096):
            part = missing[start:start + 4096]
            self.table[part] = self._compute(part)
        return self.table[flat].view(*ids.shape, self.active)

    def encode(self, ids: torch.Tensor) -> torch.Tensor:
        cols = self.columns(ids)
        out = torch.zeros(*ids.shape, self.num_columns, dtype=torch.bool, device=cols.device)
        return out.scatter_(-1, cols, True)
