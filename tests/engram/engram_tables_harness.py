"""A tiny language model around one Engram component, for placement / checkpoint / prefetch tests
(imported by the test files next to it)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cogsim.component import Context, Sizes
from cogsim.engram.component import EngramComponent, EngramParams

SIZES = Sizes(d_model=32, n_heads=2, seq_len=12, vocab_size=64)


def tiny_params(**overrides) -> EngramParams:
    base = dict(max_ngram_size=3, n_head_per_ngram=2, n_embed_per_ngram=16, engram_vocab_size=[97, 89],
                branches=2, seed=5)
    return EngramParams(**{**base, **overrides})


class TinyLM(nn.Module):
    """embedding → engram (residual) → linear head."""

    def __init__(self, **overrides) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.engram = EngramComponent(tiny_params(**overrides), SIZES)
        with torch.no_grad():  # a non-zero conv so every part of the layer is exercised
            self.engram.fusion.short_conv.weight.normal_(0, 0.3)
        self.embed = nn.Embedding(SIZES.vocab_size, SIZES.d_model)
        self.head = nn.Linear(SIZES.d_model, SIZES.vocab_size)

    def forward(self, ids: torch.Tensor, ctx: Context | None = None) -> torch.Tensor:
        x = self.embed(ids)
        x = x + self.engram({"x": x, "ids": ids}, ctx or Context())["out"]
        return self.head(x)


def batches(n: int, seed: int = 1, batch: int = 3) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, SIZES.vocab_size, (batch, SIZES.seq_len + 1), generator=g) for _ in range(n)]


def train(model: TinyLM, data: list[torch.Tensor], lr: float = 0.05, prefetch: str = "none") -> list[float]:
    """SGD on dense weights + the engram sparse step. ``prefetch``: "none" (synchronous gathers),
    "before" (prefetch each batch right before its forward) or "ahead" (prefetch the next batch
    before the current sparse step, so staged rows must be refreshed)."""
    dense = torch.optim.SGD([p for p in model.parameters()], lr=lr)
    losses = []
    if prefetch == "ahead" and data:
        model.engram.prefetch(data[0][:, :-1])
    for i, seq in enumerate(data):
        x, y = seq[:, :-1], seq[:, 1:]
        if prefetch == "before":
            model.engram.prefetch(x)
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        dense.zero_grad()
        loss.backward()
        dense.step()
        if prefetch == "ahead" and i + 1 < len(data):
            model.engram.prefetch(data[i + 1][:, :-1])
        model.engram.sparse_step(lr)
        losses.append(loss.item())
    return losses


def all_rows(model: TinyLM) -> torch.Tensor:
    table = model.engram.table
    return table.read(torch.arange(table.rows, device=table.device)).cpu()
