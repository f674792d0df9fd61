"""TemporalMemory.merge_streams: memories that each fed some of the streams combine into the memory
that fed every stream (how data-parallel ranks' HTM state is checkpointed)."""
from __future__ import annotations

import torch

from cogsim.htm.temporal_memory import TemporalMemory

C, S, T = 64, 4, 40


def make() -> TemporalMemory:
    return TemporalMemory(C, cells_per_column=4, activation_threshold=2, min_threshold=1, max_new_synapse_count=4,
                          streams=S, seed=3)


def codes(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(T, S, C, dtype=torch.bool)
    seq = torch.randint(0, C, (6, 4), generator=g)  # a repeating sequence of 6 codes per stream
    for t in range(T):
        for s in range(S):
            x[t, s, (seq[t % 6] + 7 * s) % C] = True
    return x


def feed(tm: TemporalMemory, x: torch.Tensor, streams: list[int]) -> list[torch.Tensor]:
    mask = torch.zeros(S, 1, dtype=torch.bool)
    mask[streams] = True
    return [tm.compute(x[t] & mask, learn=True) for t in range(T)]


def test_merged_streams_equal_one_memory_fed_every_stream():
    x = codes(0)
    full, a, b = make(), make(), make()
    feed(full, x, [0, 1, 2, 3])
    feed(a, x, [0, 1])
    feed(b, x, [2, 3])
    for tm in (full, a, b):
        tm.reset()
    merged = make()
    merged.load_state_dict(a.merge_streams([a.state_dict(), b.state_dict()], owners=[0, 0, 1, 1]))
    assert int(merged.num_segments().sum()) > 0
    assert torch.equal(merged.num_segments(), full.num_segments())
    assert torch.equal(merged.num_synapses(), full.num_synapses())
    later = codes(1)
    got, want = feed(merged, later, [0, 1, 2, 3]), feed(full, later, [0, 1, 2, 3])
    assert all(torch.equal(g, w) for g, w in zip(got, want))
    assert torch.equal(merged.predictive_cells, full.predictive_cells)
    # a memory that fed only half the streams differs: the merge is what makes them equal
    assert not torch.equal(a.num_segments(), full.num_segments())


def test_streams_split_across_ranks_must_cover_the_global_batch():
    import pytest

    from cogsim.component import Sizes
    from cogsim.errors import CogsimError
    from cogsim.htm.component import HTMComponent, HTMParams

    comp = HTMComponent(HTMParams(columns=64, active_columns=4, streams=4), Sizes(32, 2, 8, 300))
    comp.set_batch_rows(2, 2, 4)  # rank 1 of 2 reads global rows 2-3 into streams 2-3
    assert comp._first_stream == 2
    comp.set_batch_rows(0, 8, 8)  # one process: a batch beyond the streams is read in chunks
    assert comp._first_stream == 0
    with pytest.raises(CogsimError, match=r"htm: 4 streams cannot serve a global batch of 8 rows split across ranks"):
        comp.set_batch_rows(4, 4, 8)
