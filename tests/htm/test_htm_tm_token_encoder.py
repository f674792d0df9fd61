"""Token ids → sparse codes: fixed size, deterministic per seed, distinct tokens mostly disjoint."""
from __future__ import annotations

import pytest
import torch

from cogsim.htm import TokenEncoder


def test_codes_are_sparse_deterministic_and_seed_dependent():
    enc = TokenEncoder(1000, 512, 12, seed=3)
    ids = torch.tensor([[5, 7, 5], [999, 0, 7]])
    cols = enc.columns(ids)
    assert cols.shape == (2, 3, 12)
    assert torch.equal(cols[0, 0], cols[0, 2]) and torch.equal(cols[0, 1], cols[1, 2])
    assert torch.equal(enc.encode(ids).sum(-1), torch.full((2, 3), 12))
    again = TokenEncoder(1000, 512, 12, seed=3).columns(ids)
    assert torch.equal(cols, again)
    assert not torch.equal(TokenEncoder(1000, 512, 12, seed=4).columns(ids), cols)
    codes = enc.encode(torch.arange(200))
    overlap = (codes.float() @ codes.float().t()).fill_diagonal_(0)
    assert float(overlap.mean()) < 1.0  # ≈ 12²/512 shared columns by chance
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 1000\)"):
        enc.columns(torch.tensor([1000]))
