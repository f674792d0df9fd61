"""Competition for write access: slots bid over candidates, the top-k candidates per position win.

Bids are the slots' attention over candidates (softmax over candidates, averaged over slots); only
the k candidates with the highest bid at a position may write, and each slot's write weights are
its attention renormalised over the winners. A straight-through term lets the bids learn from what
a loser would have written, while the losers' values still receive nothing (they wrote nothing).
"""
from __future__ import annotations

from typing import NamedTuple

import torch


class Competition(NamedTuple):
    write: torch.Tensor  # [B, T, K, M] write weights of each slot over candidates (0 for losers)
    bids: torch.Tensor  # [B, T, M] each candidate's bid (mean slot attention; sums to 1 over M)
    winners: torch.Tensor  # [B, T, M] bool, exactly min(k, M) true per position


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Softmax from elementary ops: on CPU several times faster than ``Tensor.softmax`` when the
    reduced dimension is tiny (a handful of candidates or slots), as it is everywhere here."""
    e = (x - x.amax(dim, keepdim=True).detach()).exp()
    return e / e.sum(dim, keepdim=True)


def compete(logits: torch.Tensor, top_k: int, straight_through: bool = True) -> Competition:
    """Run the competition on slot-over-candidate logits [B, T, K, M]."""
    attn = softmax(logits)
    bids = attn.mean(-2)
    m = logits.shape[-1]
    if top_k >= m:
        winners = torch.ones_like(bids, dtype=torch.bool)
        return Competition(attn, bids, winners)
    idx = bids.detach().topk(top_k, dim=-1).indices
    winners = torch.zeros_like(bids, dtype=torch.bool).scatter_(-1, idx, True)
    # softmax restricted to the winners: losers get weight 0 and (masked) exactly zero gradient
    write = softmax(logits.masked_fill(~winners[..., None, :], float("-inf")))
    if straight_through:
        # same forward value; backward only that of attn·w / Σ attn·w with the mask
        # w + bid - sg(bid): every candidate's bid learns whether winning would have helped
        mask = winners.to(logits.dtype) + (bids - bids.detach())
        soft = attn * mask[..., None, :]
        soft = soft / soft.sum(-1, keepdim=True)
        write = write.detach() + (soft - soft.detach())
    return Competition(write, bids, winners)


__all__ = ["Competition", "compete", "softmax"]
