"""Presynaptic index of the temporal memory: for every cell, the segments that have a synapse on it.

Counting active synapses through the active cells' segments costs what htm.core pays, not a scan of
all synapses. Append-only and blocked: stale entries only over-count, so its counts are a candidate
filter (docs/design.md §5.2.3).
"""
from __future__ import annotations

import torch

BLOCK = 16
_SHIFT = 4


class SegmentIndex:
    """cell id → segment slot ids (int32), append-only, blocked."""

    def __init__(self, num_cells: int, dummy: int, device: torch.device) -> None:
        self.num_cells = num_cells
        self.device = device
        self.dummy = dummy
        self.length = torch.zeros(num_cells, dtype=torch.int32, device=device)
        self.table = torch.zeros((num_cells, 2), dtype=torch.int32, device=device)  # [count, ids...]
        self.pool = torch.full((64, BLOCK), dummy, dtype=torch.int32, device=device)
        self.owner = torch.zeros(64, dtype=torch.int32, device=device)  # cell of each block
        self.blocks_used = 0
        self._ordered = 0  # blocks_used at the last defragmentation
        self.entries = 0  # appended since construction (live + stale)

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.length, self.table, self.pool, self.owner))

    def lookup(self, cells: torch.Tensor) -> torch.Tensor:
        """All entries (segment slots, int32, padded with ``dummy``) of the given cells (int64)."""
        rows = self.table.index_select(0, cells)
        nblk = rows[:, 0]
        width = int(nblk.max()) if cells.numel() else 0
        if width == 0:
            return torch.empty(0, dtype=torch.int32, device=self.device)
        ids = rows[:, 1:width + 1].masked_select(
            torch.arange(width, device=self.device, dtype=torch.int32) < nblk[:, None])
        return self.pool.index_select(0, ids).view(-1)

    def append(self, cells: torch.Tensor, slots: torch.Tensor) -> None:
        """Add entries ``cells[i] → slots[i]`` (int64 tensors of equal length)."""
        n = cells.numel()
        if n == 0:
            return
        dev = self.device
        cells, order = torch.sort(cells.to(torch.int32), stable=True)
        slots = slots.index_select(0, order)
        uniq, counts = torch.unique_consecutive(cells, return_counts=True)
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(n, device=dev) - torch.repeat_interleave(starts, counts)
        pos = self.length.index_select(0, cells).long() + rank
        blk = pos >> _SHIFT
        off = pos & (BLOCK - 1)
        fresh = (off == 0).nonzero().squeeze(1)
        if fresh.numel():
            width = int(blk.max()) + 2
            self._reserve(self.blocks_used + fresh.numel(), width)
            ids = torch.arange(self.blocks_used, self.blocks_used + fresh.numel(), device=dev, dtype=torch.int32)
            stride = self.table.shape[1]
            fresh_cells = cells.index_select(0, fresh)
            self.table.view(-1)[fresh_cells.long() * stride + 1 + blk.index_select(0, fresh)] = ids
            self.owner[self.blocks_used:self.blocks_used + fresh.numel()] = fresh_cells
            self.blocks_used += fresh.numel()
        stride = self.table.shape[1]
        block_ids = self.table.view(-1).index_select(0, cells.long() * stride + 1 + blk)
        self.pool.view(-1)[(block_ids.long() << _SHIFT) + off] = slots.to(torch.int32)
        self.length.index_add_(0, uniq, counts.to(torch.int32))
        uniq = uniq.long()
        self.table.view(-1)[uniq * stride] = (self.length.index_select(0, uniq) + BLOCK - 1) >> _SHIFT
        self.entries += n
        if self.blocks_used >= 2 * self._ordered + 4096:
            self.defragment()

    def defragment(self) -> None:
        """Reorder the pool so that every cell's blocks are adjacent, in their original order."""
        used = self.blocks_used
        order = torch.sort(self.owner[:used], stable=True).indices
        self.pool[:used] = self.pool[:used].index_select(0, order)
        self.owner[:used] = self.owner[:used].index_select(0, order)
        new_id = torch.empty(used, dtype=torch.int32, device=self.device)
        new_id[order] = torch.arange(used, dtype=torch.int32, device=self.device)
        ids = self.table[:, 1:]
        ids.copy_(new_id.index_select(0, ids.reshape(-1).clamp(max=used - 1).long()).view(ids.shape))
        self._ordered = used

    def _reserve(self, blocks: int, width: int) -> None:
        if blocks > self.pool.shape[0]:
            new = max(blocks, self.pool.shape[0] * 3 // 2 + 64)
            pool = torch.full((new, BLOCK), self.dummy, dtype=torch.int32, device=self.device)
            pool[: self.blocks_used] = self.pool[: self.blocks_used]
            self.pool = pool
            owner = torch.zeros(new, dtype=torch.int32, device=self.device)
            owner[: self.blocks_used] = self.owner[: self.blocks_used]
            self.owner = owner
        if width > self.table.shape[1]:
            new = max(width, self.table.shape[1] * 3 // 2 + 1)
            table = torch.zeros((self.num_cells, new), dtype=torch.int32, device=self.device)
            table[:, : self.table.shape[1]] = self.table
            self.table = table

    def remap(self, old_cap: int, new_cap: int, dummy: int) -> None:
        """Segment slots moved from ``s*old_cap + j`` to ``s*new_cap + j`` (capacity growth)."""
        used = self.pool[: self.blocks_used]
        used.add_(torch.div(used, old_cap, rounding_mode="floor") * (new_cap - old_cap))
        self.pool[self.blocks_used:] = dummy
        self.dummy = dummy
