"""The rules where htm.core and NuPIC differ, on both backends: the least-used-cell tie-break, the
winner-cell reuse of a bursting column without a matching segment, and which segment a full cell
evicts; and the A B C D × 15 sequence that htm.core gives at its defaults (issue 12)."""
from __future__ import annotations

import pytest
import torch

from cogsim.htm.temporal_memory import TemporalMemory
from tm_harness import BACKENDS, cells, cols, make, segs_of, wire



@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


def _abcd(num_columns=2048, active=40, seed=0):
    """Four codes of ``active`` of ``num_columns`` columns, no column shared."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(num_columns, generator=g)
    x = torch.zeros(4, 1, num_columns, dtype=torch.bool)
    for i in range(4):
        x[i, 0, perm[i * active:(i + 1) * active]] = True
    return x


def _repetitions(tm, x, reps=15):
    """Anomaly of each element of A B C D, ``reps`` times in a row, learning, no resets."""
    return [[float(tm.compute(x[i])[0]) for i in range(4)] for _ in range(reps)]


def test_abcd_times_15_gives_htmcores_sequence_at_its_defaults(backend):
    """htm.core (initial permanence 0.21, connected 0.5): repetitions 1-4 all unpredicted, 5 is
    [1, 0, 0, 0], 6-15 all predicted."""
    for seed in range(3):
        got = _repetitions(TemporalMemory(2048, backend=backend), _abcd(seed=seed))
        assert got == [[1.0] * 4] * 4 + [[1.0, 0.0, 0.0, 0.0]] + [[0.0] * 4] * 10, seed


def test_abcd_times_15_with_synapses_connected_at_birth(backend):
    """Initial permanence 0.21, connected 0.2: all predicted from repetition 3 on."""
    got = _repetitions(TemporalMemory(2048, connected_permanence=0.2, backend=backend), _abcd())
    assert got[0] == [1.0] * 4 and got[1] == [1.0, 0.0, 0.0, 0.0]
    assert got[2:] == [[0.0] * 4] * 13


def test_nupic_rules_never_settle_on_abcd(backend):
    """With NuPIC's random tie-break the surprise keeps moving (issue 12: repetition 15 is not all 0)."""
    got = _repetitions(TemporalMemory(2048, backend=backend, rules="nupic"), _abcd())
    assert any(sum(rep) > 0 for rep in got[5:])


def test_least_used_cell_ties_go_to_the_lowest_index(backend):
    tm = make(backend, num_columns=64, cells_per_column=8)
    tm.compute(cols(*range(0, 64, 2), n=64))
    assert cells(tm.winner_cells) == [c * 8 for c in range(0, 64, 2)]
    tm = make(backend, num_columns=64, cells_per_column=8, rules="nupic")  # random among the least used
    tm.compute(cols(*range(0, 64, 2), n=64))
    assert len({w % 8 for w in cells(tm.winner_cells)}) > 1


def _reuse_scenario(backend, rules):
    """Column 0 is predicted (its cell 2 wins), then active again with nothing matching."""
    tm = make(backend, rules=rules)
    wire(tm, 2, {4: 0.5, 5: 0.5, 6: 0.5})
    tm.compute(cols(1))
    tm.compute(cols(0))
    assert cells(tm.winner_cells) == [2]
    anomaly = float(tm.compute(cols(0))[0])
    return tm, anomaly


def test_bursting_column_without_matching_segment_reuses_its_previous_winner(backend):
    tm, anomaly = _reuse_scenario(backend, "htm.core")
    assert anomaly == 1.0 and cells(tm.active_cells) == [0, 1, 2, 3]
    assert cells(tm.winner_cells) == [2]
    assert segs_of(tm, 2)[1] == pytest.approx({2: 0.21})  # its new segment: onto the previous winner


def test_nupic_rules_pick_the_least_used_cell_instead(backend):
    tm, _ = _reuse_scenario(backend, "nupic")
    (winner,) = cells(tm.winner_cells)
    assert winner != 2  # cell 2 has a segment; the least used cells have none


def _eviction_scenario(backend, rules):
    """Cell 12 (one cell per column, at most 2 segments) holds a strong segment never used since it
    was made and a weak one active just now; then learning needs a third."""
    tm = make(backend, cells_per_column=1, max_segments_per_cell=2, rules=rules)
    wire(tm, 12, {1: 0.9, 2: 0.9, 3: 0.9})
    wire(tm, 12, {5: 0.5, 6: 0.5, 7: 0.5})
    for _ in range(3):
        tm.compute(cols())
    tm.compute(cols(5, 6, 7))
    assert cells(tm.predictive_cells) == [12]
    tm.compute(cols())
    tm.compute(cols(20, 21))
    tm.compute(cols(12))
    return sorted(sorted(s) for s in segs_of(tm, 12))


def test_full_cell_evicts_the_segment_with_the_smallest_sum_of_squared_permanences(backend):
    assert _eviction_scenario(backend, "htm.core") == [[1, 2, 3], [20, 21]]


def test_nupic_rules_evict_the_least_recently_used_segment(backend):
    assert _eviction_scenario(backend, "nupic") == [[5, 6, 7], [20, 21]]


def test_unknown_rules_are_rejected():
    with pytest.raises(ValueError, match="rules must be one of htm.core, nupic, got 'numenta'"):
        TemporalMemory(32, rules="numenta")
