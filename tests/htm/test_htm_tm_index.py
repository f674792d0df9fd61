"""The TM's presynaptic segment index: lookups return exactly what was appended (plus padding),
across block growth, capacity remapping and defragmentation."""
from __future__ import annotations

from collections import Counter

import torch

from cogsim.htm.segment_index import SegmentIndex


def _expected(log, cells):
    want = Counter()
    for c in cells:
        want.update(log.get(c, []))
    return want


def test_lookup_returns_every_appended_entry_after_growth_and_defragmentation():
    g = torch.Generator().manual_seed(0)
    num_cells, dummy = 500, 10_000
    index = SegmentIndex(num_cells, dummy=dummy, device=torch.device("cpu"))
    log: dict[int, list[int]] = {}
    for step in range(40):
        cells = torch.randint(0, num_cells, (700,), generator=g)
        slots = torch.randint(0, dummy, (700,), generator=g)
        index.append(cells, slots)
        for c, s in zip(cells.tolist(), slots.tolist()):
            log.setdefault(c, []).append(s)
        if step in (13, 29):
            index.defragment()
        query = torch.randperm(num_cells, generator=g)[:60]
        got = Counter(v for v in index.lookup(query).tolist() if v != dummy)
        assert got == _expected(log, query.tolist()), step
    # the pool is laid out cell by cell after a defragmentation
    index.defragment()
    owners = index.owner[: index.blocks_used]
    assert torch.equal(owners, torch.sort(owners).values)
    # slots renumbered for a larger pool (capacity 10000 → 15000 slots per stream, one stream here)
    index.remap(dummy, 15_000, dummy=15_000)
    query = torch.arange(num_cells)
    got = Counter(v for v in index.lookup(query).tolist() if v != 15_000)
    assert got == _expected(log, query.tolist())
