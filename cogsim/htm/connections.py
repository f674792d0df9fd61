"""The temporal memory's segment and synapse storage (htm.core keeps the same in ``Connections``).

A growing pool of segment slots per stream, synapse rows, and a presynaptic index
(:mod:`cogsim.htm.segment_index`); layout in docs/design.md §5.2.3. :class:`Connections` is a mixin of
:class:`~cogsim.htm.temporal_memory.TemporalMemory`, so ``state_dict`` keys are the temporal memory's.
The learning rules stay in ``temporal_memory``.
"""
from __future__ import annotations

import torch

from cogsim.htm.segment_index import SegmentIndex

_SCAN = 256  # chunk length of the dense candidate scan (the hit histogram is a multiple of it)
_I64 = torch.int64
#: buffers whose shapes grow with the pool (a checkpoint holds them at their saved size)
GROWABLE = ("syn_pre", "syn_perm", "seg_cell", "seg_uid", "seg_last", "seg_nsyn")


class Connections:
    """Segment pool, synapse rows and the presynaptic index of a batched temporal memory.

    Uses from the host module: ``streams``, ``num_cells``, ``max_segments_per_cell``,
    ``max_synapses_per_segment``, ``device``, ``_pad`` (the sentinel cell), ``_step``, ``_iteration``,
    ``_cand`` (candidate slots, remapped when slots move) and ``_evict(cells)`` (the eviction rule).
    """

    def _init_storage(self, capacity: int, width: int, device: torch.device) -> None:
        """Register the (empty) storage buffers: ``capacity`` slots per stream, rows ``width`` wide."""
        S, N, dev, cap = self.streams, self.num_cells, device, capacity
        self.register_buffer("syn_pre", torch.full((S * cap, width), self._pad, dtype=torch.int32, device=dev))
        self.register_buffer("syn_perm", torch.zeros((S * cap, width), dtype=torch.float32, device=dev))
        self.register_buffer("seg_cell", torch.full((S * cap,), -1, dtype=torch.int32, device=dev))
        self.register_buffer("seg_uid", torch.zeros(S * cap, dtype=_I64, device=dev))
        self.register_buffer("seg_last", torch.zeros(S * cap, dtype=_I64, device=dev))
        self.register_buffer("seg_nsyn", torch.zeros(S * cap, dtype=torch.int32, device=dev))
        self.register_buffer("seg_top", torch.zeros(S, dtype=_I64, device=dev))
        self.register_buffer("next_uid", torch.zeros(S, dtype=_I64, device=dev))
        self.register_buffer("cell_nseg", torch.zeros(S * N, dtype=torch.int32, device=dev))
        # derived (rebuilt after loading or moving)
        self._index: SegmentIndex | None = None
        self._cell_segs: torch.Tensor | None = None  # cell → its slots, built once a cell nears the cap

    def _adopt_saved_shapes(self, state_dict, prefix: str, error_msgs: list) -> None:
        """Before loading: the pool grows while learning, so take the saved shapes of the growable
        buffers."""
        for name in GROWABLE:
            key, buf = prefix + name, self._buffers[name]
            src = state_dict.get(key)
            if src is None or tuple(src.shape) == tuple(buf.shape):
                continue
            if src.dim() != buf.dim() or src.shape[0] % self.streams:
                error_msgs.append(f"{key}: saved shape {list(src.shape)} does not fit this temporal memory "
                                  f"({self.streams} streams)")
                continue
            self._buffers[name] = torch.empty(src.shape, dtype=buf.dtype, device=buf.device)

    @property
    def capacity(self) -> int:
        """Segment slots per stream currently allocated."""
        return self.seg_cell.numel() // self.streams

    def segments(self, stream: int = 0) -> list[tuple[int, list[tuple[int, float]]]]:
        """Readable dump of one stream: [(cell, [(presynaptic cell, permanence), ...]), ...], cells
        local to the stream (tests, debugging)."""
        lo = stream * self.capacity
        hi = lo + int(self.seg_top[stream])
        base = stream * self.num_cells
        cells = (self.seg_cell[lo:hi] - base).tolist()
        pres = (self.syn_pre[lo:hi] - base).tolist()
        perms = self.syn_perm[lo:hi].tolist()
        pad = self._pad - base
        return [(c, [(p, q) for p, q in zip(pre, perm) if p != pad])
                for c, pre, perm in zip(cells, pres, perms) if c >= -base]

    def _destroy_segments(self, rows) -> None:
        cells = self.seg_cell.index_select(0, rows).long()
        self.cell_nseg.index_add_(0, cells, torch.full_like(cells, -1, dtype=torch.int32))
        self.seg_cell.index_fill_(0, rows, -1)
        self.seg_nsyn.index_fill_(0, rows, 0)
        self.syn_pre.index_fill_(0, rows, self._pad)
        self.syn_perm.index_fill_(0, rows, 0.0)
        if self._cell_segs is not None:  # drop the slots from their cells' lists, keep lists packed
            owners = torch.unique(cells)
            lists = self._cell_segs.index_select(0, owners)
            keep = (lists >= 0) & ~torch.isin(lists, rows.to(torch.int32))
            order = torch.sort(keep.to(torch.int8), dim=1, descending=True, stable=True).indices
            packed = torch.where(keep, lists, -1).gather(1, order)
            self._cell_segs.index_copy_(0, owners, packed)

    def _create_segments(self, cells) -> torch.Tensor:
        """New (empty) segments on the given global cells (one per cell, sorted by stream); returns
        their slots. A cell at max_segments_per_cell first loses a segment (``_evict``: the rule),
        whose slot the new one takes."""
        S, N, dev = self.streams, self.num_cells, self.device
        nseg = self.cell_nseg.index_select(0, cells)
        if self._cell_segs is None and int(nseg.max()) + 1 >= self.max_segments_per_cell:
            self._build_cell_segs()
        full = nseg >= self.max_segments_per_cell
        any_full = bool(full.any())
        fresh = (~full).nonzero().squeeze(1) if any_full else torch.arange(cells.numel(), device=dev)
        f_stream = cells.index_select(0, fresh) // N
        f_count = torch.bincount(f_stream, minlength=S)
        need = int((self.seg_top + f_count).max())
        if need > self.capacity:
            self._grow_capacity(need)
        rows = torch.empty_like(cells)
        if any_full:
            rows[full] = self._evict(cells[full])
        f_rank = torch.arange(fresh.numel(), device=dev) - (torch.cumsum(f_count, 0) - f_count)[f_stream]
        rows[fresh] = f_stream * self.capacity + self.seg_top[f_stream] + f_rank
        self.seg_top += f_count
        stream = cells // N
        count = torch.bincount(stream, minlength=S)
        rank = torch.arange(cells.numel(), device=dev) - (torch.cumsum(count, 0) - count)[stream]
        self.seg_cell[rows] = cells.to(torch.int32)
        self.seg_uid[rows] = self.next_uid[stream] + rank
        self.seg_last[rows] = self._iteration
        self.next_uid += count
        if self._cell_segs is not None:
            pos = self.cell_nseg.index_select(0, cells).long()
            if int(pos.max()) >= self._cell_segs.shape[1]:
                self._widen_cell_segs(int(pos.max()) + 1)
            self._cell_segs.view(-1)[cells * self._cell_segs.shape[1] + pos] = rows.to(torch.int32)
        self.cell_nseg.index_add_(0, cells, torch.ones_like(cells, dtype=torch.int32))
        return rows

    def _build_cell_segs(self) -> None:
        """cell → its segment slots (packed rows, -1 padding), for eviction."""
        live = (self.seg_cell >= 0).nonzero().squeeze(1)
        cells = self.seg_cell[live].long()
        cells, order = torch.sort(cells, stable=True)
        live = live[order]
        width = max(1, int(self.cell_nseg.max()) + 1)
        table = torch.full((self.cell_nseg.numel(), width), -1, dtype=torch.int32, device=self.device)
        if live.numel():
            uniq, counts = torch.unique_consecutive(cells, return_counts=True)
            rank = torch.arange(live.numel(), device=self.device) - torch.repeat_interleave(
                torch.cumsum(counts, 0) - counts, counts)
            table.view(-1)[cells * width + rank] = live.to(torch.int32)
        self._cell_segs = table

    def _widen_cell_segs(self, need: int) -> None:
        old = self._cell_segs
        new = min(self.max_segments_per_cell, max(need, old.shape[1] * 2))
        table = torch.full((old.shape[0], new), -1, dtype=torch.int32, device=self.device)
        table[:, : old.shape[1]] = old
        self._cell_segs = table

    def _rebuild_index(self) -> None:
        """(Re)build the presynaptic index from the synapse rows, dropping stale entries."""
        dev = self.device
        P = self.seg_cell.numel()
        # per-segment index hit counts: uint8 is fastest on CPU and exact while a segment has at most
        # 255 entries; segments beyond that are tracked in ``_risky`` and always recounted
        dtype = torch.uint8 if dev.type == "cpu" else torch.int32
        self._hist_limit = 255 if dtype == torch.uint8 else 2 ** 31 - 1
        self._hist = torch.zeros(-(-(P + 1) // _SCAN) * _SCAN, dtype=dtype, device=dev)
        self._ones = torch.ones(1 << 16, dtype=dtype, device=dev)
        self._minus_ones = self._ones * -1 if dtype != torch.uint8 else self._ones * 255
        self._owner = torch.zeros(P + 1, dtype=_I64, device=dev)
        self._seg_entries = torch.zeros(P, dtype=torch.int32, device=dev)
        self._risky = torch.empty(0, dtype=_I64, device=dev)
        self._index = SegmentIndex(self.streams * self.num_cells, dummy=P, device=dev)
        chunk = max(1, (1 << 22) // max(1, self.syn_pre.shape[1]))
        for start in range(0, P, chunk):
            pre = self.syn_pre[start:start + chunk]
            r, w = (pre != self._pad).nonzero(as_tuple=True)
            self._index_append(pre[r, w].long(), r + start, check=False)

    def _index_append(self, cells, rows, check: bool = True) -> None:
        self._index.append(cells, rows)
        self._seg_entries.index_add_(0, rows, torch.ones_like(rows, dtype=torch.int32))
        over = rows[self._seg_entries.index_select(0, rows) > self._hist_limit]
        if over.numel():
            self._risky = torch.unique(torch.cat([self._risky, over]))
        if check and (self._risky.numel() > 4096 or (
                (self._step & 255) == 0 and self._index.entries > 2 * int(self.seg_nsyn.sum()) + (1 << 20))):
            self._rebuild_index()

    def _moved(self, rows: torch.Tensor, old: int) -> torch.Tensor:
        """Slot ids after the pool went from ``old`` to ``capacity`` slots per stream."""
        return rows + rows // old * (self.capacity - old)

    def _grow_capacity(self, need: int) -> None:
        """Make room for ``need`` slots per stream: compact away destroyed segments when they are
        many, else enlarge the pool (×1.5). Slot ids change; uids (and so results) do not."""
        S, old = self.streams, self.capacity
        used = int(self.seg_top.sum())
        live = int((self.seg_cell >= 0).sum())
        if used - live > used // 3:
            self._compact()
            need = need - old + int(self.seg_top.max())  # still wanted after compaction
            if need <= self.capacity:
                return
        new = max(need, old * 3 // 2 + 16)
        dev = self.device

        def regrow(t: torch.Tensor, fill) -> torch.Tensor:
            out = torch.full((S, new) + tuple(t.shape[1:]), fill, dtype=t.dtype, device=dev)
            out[:, :old] = t.view((S, old) + tuple(t.shape[1:]))
            return out.view((S * new,) + tuple(t.shape[1:]))

        self.syn_pre = regrow(self.syn_pre, self._pad)
        self.syn_perm = regrow(self.syn_perm, 0.0)
        self.seg_cell = regrow(self.seg_cell, -1)
        self.seg_uid = regrow(self.seg_uid, 0)
        self.seg_last = regrow(self.seg_last, 0)
        self.seg_nsyn = regrow(self.seg_nsyn, 0)
        self._seg_entries = regrow(self._seg_entries, 0)
        self._cand = self._moved(self._cand, old)
        self._risky = self._moved(self._risky, old)
        if self._cell_segs is not None:
            valid = self._cell_segs >= 0
            moved = self._moved(self._cell_segs.long(), old).to(torch.int32)
            self._cell_segs = torch.where(valid, moved, self._cell_segs)
        self._index.remap(old, new, dummy=S * new)
        self._hist = torch.zeros(-(-(S * new + 1) // _SCAN) * _SCAN, dtype=self._hist.dtype, device=dev)
        self._owner = torch.zeros(S * new + 1, dtype=_I64, device=dev)

    def _compact(self) -> None:
        """Renumber live segments densely per stream (dropping destroyed ones) and rebuild the index."""
        S, cap = self.streams, self.capacity
        alive = (self.seg_cell >= 0).view(S, cap)
        local = torch.cumsum(alive, 1) - 1
        new_of = torch.where(alive, local + torch.arange(S, device=self.device)[:, None] * cap, -1).view(-1)
        src = alive.view(-1).nonzero().squeeze(1)
        dst = new_of[src]
        fills = {"syn_pre": self._pad, "syn_perm": 0.0, "seg_cell": -1, "seg_uid": 0, "seg_last": 0, "seg_nsyn": 0}
        for name, fill in fills.items():
            old = getattr(self, name)
            new = torch.full_like(old, fill)
            new[dst] = old[src]
            setattr(self, name, new)
        self.seg_top = alive.sum(1)
        # candidates keep their positions; a destroyed one (never used for learning) maps to slot 0
        self._cand = new_of[self._cand].clamp(min=0)
        if self._cell_segs is not None:
            valid = self._cell_segs >= 0
            self._cell_segs = torch.where(valid, new_of[self._cell_segs.long().clamp(min=0)].to(torch.int32), -1)
        self._rebuild_index()

    def _grow_width(self, need: int) -> None:
        old = self.syn_pre.shape[1]
        new = min(self.max_synapses_per_segment, max(need, old * 3 // 2))
        P = self.syn_pre.shape[0]
        pre = torch.full((P, new), self._pad, dtype=torch.int32, device=self.device)
        perm = torch.zeros((P, new), dtype=torch.float32, device=self.device)
        pre[:, :old] = self.syn_pre
        perm[:, :old] = self.syn_perm
        self.syn_pre, self.syn_perm = pre, perm
