"""Recording of activity for figures (docs/design.md §10: off the hot path, owned by one model instance).

A :class:`Recorder` is handed to components through the forward context only while recording is
on; components publish tensors with ``ctx.record(name, value)``. Subsampling keeps traces small.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable

import torch


class Recorder:
    """Collects trace tensors per node, optionally restricted to some nodes and subsampled.

    ``nodes``: node names to record (None = all). ``max_positions``: keep at most this many leading
    positions of [B, T, ...] tensors. ``max_units``: keep at most this many entries of the last
    dimension (e.g. neurons). ``batch``: keep only these batch rows (default: the first).
    """

    def __init__(self, nodes: Iterable[str] | None = None, max_positions: int | None = None,
                 max_units: int | None = None, batch: slice | int | None = 0) -> None:
        self.nodes = set(nodes) if nodes is not None else None
        self.max_positions = max_positions
        self.max_units = max_units
        self.batch = batch
        self.traces: dict[str, dict[str, torch.Tensor]] = defaultdict(dict)

    def wants(self, node: str) -> bool:
        return self.nodes is None or node in self.nodes

    def add(self, node: str, name: str, value: torch.Tensor, cycle: int = 0) -> None:
        value = value.detach()
        if value.dim() >= 2 and self.batch is not None:
            value = value[self.batch : self.batch + 1] if isinstance(self.batch, int) else value[self.batch]
        if self.max_positions is not None and value.dim() >= 2:
            value = value[:, : self.max_positions]
        if self.max_units is not None and value.dim() >= 3:
            value = value[..., : self.max_units]
        key = name if cycle == 0 else f"{name}@cycle{cycle}"
        self.traces[node][key] = value.float().cpu() if value.is_floating_point() else value.cpu()

    def as_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        return {k: dict(v) for k, v in self.traces.items()}
