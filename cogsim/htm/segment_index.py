"""Presynaptic index of the temporal memory: for every cell, the segments that have a synapse on it.

Counting the active synapses of every segment by scanning all synapses costs O(total synapses) per
step; going through the synapses of the *active* cells costs what htm.core pays (its
"segments for presynaptic cell" lists). The index is append-only: destroyed synapses and segments
leave stale entries behind, which only ever over-count, so the temporal memory treats the counts as
a candidate filter and recounts candidates exactly from the synapse rows. ``rebuild`` drops the
stale entries.

Layout: entries live in fixed-size blocks (``block`` int32 segment slots each) of one pool; a cell
owns a row of block ids in ``table``. Unused entries hold ``dummy`` (a slot that is never a
segment), so lookups need no masking.
"""
from __future__ import annotations

import torch


class SegmentIndex:
    """cell id → segment slot ids (int32), append-only, blocked."""

    def __init__(self, num_cells: int, dummy: int, device: torch.device, block: int = 32) -> None:
        self.num_cells = num_cells
        self.block = block
        self.device = device
        self.dummy = dummy
        self.clear()

    def clear(self) -> None:
        dev = self.device
        self.length = torch.zeros(self.num_cells, dtype=torch.int32, device=dev)
        self.table = torch.full((self.num_cells, 1), -1, dtype=torch.int32, device=dev)
        self.pool = torch.full((64, self.block), self.dummy, dtype=torch.int32, device=dev)
        self.blocks_used = 0
        self.entries = 0  # appended since the last clear (live + stale)

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.length, self.table, self.pool))

    # ---- queries ---------------------------------------------------------------------------
    def lookup(self, cells: torch.Tensor) -> torch.Tensor:
        """All entries (segment slots, int32, padded with ``dummy``) of the given cells."""
        if cells.numel() == 0 or self.blocks_used == 0:
            return torch.empty(0, dtype=torch.int32, device=self.device)
        nblk = (self.length[cells] + (self.block - 1)) // self.block
        width = int(nblk.max())
        if width == 0:
            return torch.empty(0, dtype=torch.int32, device=self.device)
        rows = self.table[cells, :width]
        blocks = rows[torch.arange(width, device=self.device) < nblk[:, None]]
        return self.pool.index_select(0, blocks.long()).view(-1)

    # ---- updates ---------------------------------------------------------------------------
    def append(self, cells: torch.Tensor, slots: torch.Tensor) -> None:
        """Add entries ``cells[i] → slots[i]`` (int64 tensors of equal length)."""
        n = cells.numel()
        if n == 0:
            return
        dev = self.device
        cells, order = torch.sort(cells, stable=True)
        slots = slots[order]
        uniq, counts = torch.unique_consecutive(cells, return_counts=True)
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(n, device=dev) - torch.repeat_interleave(starts, counts)
        pos = self.length[cells].long() + rank
        blk = pos // self.block
        off = pos - blk * self.block
        fresh = off == 0
        n_fresh = int(fresh.sum())
        if n_fresh:
            self._reserve(self.blocks_used + n_fresh, int(blk.max()) + 1)
            ids = self.blocks_used + torch.arange(n_fresh, device=dev, dtype=torch.int32)
            self.table[cells[fresh], blk[fresh]] = ids
            self.blocks_used += n_fresh
        block_ids = self.table[cells, blk].long()
        self.pool[block_ids, off] = slots.to(torch.int32)
        self.length.index_add_(0, uniq, counts.to(torch.int32))
        self.entries += n

    def _reserve(self, blocks: int, width: int) -> None:
        if blocks > self.pool.shape[0]:
            new = max(blocks, self.pool.shape[0] * 3 // 2 + 64)
            pool = torch.full((new, self.block), self.dummy, dtype=torch.int32, device=self.device)
            pool[: self.blocks_used] = self.pool[: self.blocks_used]
            self.pool = pool
        if width > self.table.shape[1]:
            new = max(width, self.table.shape[1] * 2)
            table = torch.full((self.num_cells, new), -1, dtype=torch.int32, device=self.device)
            table[:, : self.table.shape[1]] = self.table
            self.table = table

    def remap(self, old_cap: int, new_cap: int, dummy: int) -> None:
        """Segment slots moved from ``s*old_cap + j`` to ``s*new_cap + j`` (capacity growth)."""
        used = self.pool[: self.blocks_used]
        used.add_(torch.div(used, old_cap, rounding_mode="floor") * (new_cap - old_cap))
        self.pool[self.blocks_used:] = dummy
        self.dummy = dummy
