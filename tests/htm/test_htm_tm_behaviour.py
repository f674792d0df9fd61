"""TemporalMemory behaviour: sequence learning, bursting, winners, bounds, limits, reproducibility,
batching, the repeating-sequence signature of htm.core, checkpoints."""
from __future__ import annotations

import copy
import io

import pytest
import torch

from cogsim.htm.temporal_memory import TemporalMemory

C, A = 128, 16  # columns, active columns per code


def _codes(n, streams=1, seed=0, num_columns=C, active=A):
    g = torch.Generator().manual_seed(seed)
    out = torch.zeros(n, streams, num_columns, dtype=torch.bool)
    for i in range(n):
        for s in range(streams):
            out[i, s, torch.randperm(num_columns, generator=g)[:active]] = True
    return out


def _tm(**kw):
    cfg = dict(num_columns=C, cells_per_column=8, activation_threshold=10, min_threshold=8,
               max_new_synapse_count=16)
    cfg.update(kw)
    return TemporalMemory(**cfg)


def test_repeated_sequence_is_learned_exactly():
    """A B C D presented after a reset each time: after a few repetitions B, C, D are predicted
    (anomaly 0) and the prediction after each element is exactly the next element's columns."""
    tm = _tm()
    abcd = _codes(4)
    for rep in range(6):
        tm.reset()
        anomalies = [float(tm.compute(abcd[i])[0]) for i in range(4)]
    assert anomalies == [1.0, 0.0, 0.0, 0.0]  # A has no context after a reset
    tm.reset()
    for i in range(4):
        tm.compute(abcd[i])
        expected = abcd[i + 1, 0] if i < 3 else torch.zeros(C, dtype=torch.bool)
        assert torch.equal(tm.predicted_columns()[0], expected)


def test_never_seen_element_has_anomaly_one_and_bursts():
    tm = _tm()
    abcd = _codes(4)
    for rep in range(6):
        tm.reset()
        for i in range(4):
            tm.compute(abcd[i])
    tm.reset()
    tm.compute(abcd[0])
    novel = torch.zeros(1, C, dtype=torch.bool)  # an element sharing no column with the expected B
    novel[0, (~abcd[1, 0]).nonzero().squeeze(1)[:A]] = True
    assert float(tm.compute(novel)[0]) == 1.0
    # every cell of every active column fired (burst), one winner per column
    active = tm.active_cells[0].view(C, -1)
    cols = novel[0]
    assert active[cols].all() and not active[~cols].any()
    winners = tm.winner_cells[0].view(C, -1)
    assert torch.equal(winners.sum(1), cols.long())


def test_first_step_bursts_and_grows_nothing_then_winners_grow_segments():
    tm = _tm()
    x = _codes(2)
    assert float(tm.compute(x[0])[0]) == 1.0
    assert int(tm.num_segments()) == 0  # no previous winners: nothing to grow onto
    prev_winners = set(tm.winner_cells[0].nonzero().squeeze(1).tolist())
    tm.compute(x[1])
    segs = tm.segments(0)
    assert len(segs) == A  # one new segment per bursting column, on that column's winner
    winners = set(tm.winner_cells[0].nonzero().squeeze(1).tolist())
    assert {cell for cell, _ in segs} == winners
    for cell, syns in segs:  # min(max_new_synapse_count, #previous winners) synapses onto previous winners
        assert len(syns) == 16
        assert {p for p, _ in syns} <= prev_winners
        assert all(abs(q - 0.21) < 1e-7 for _, q in syns)


def test_bursting_column_picks_best_matching_segment_cell():
    tm = _tm()
    x = _codes(2)
    tm.compute(x[0])
    tm.compute(x[1])  # B bursts; its winners grow segments onto A's winners
    first = tm.segments(0)
    owners = {cell for cell, _ in first}
    tm.reset()
    tm.compute(x[0])
    assert float(tm.compute(x[1])[0]) == 1.0  # segments only match (0.21 < 0.5 connected): burst
    winners = set(tm.winner_cells[0].nonzero().squeeze(1).tolist())
    assert winners == owners  # ... and each column's winner is the owner of its matching segment
    second = dict(tm.segments(0))
    for cell, syns in first:  # that segment learned: synapses onto active cells +0.1
        assert all(abs(q - 0.31) < 1e-6 for _, q in second[cell])


def test_least_used_cell_is_chosen_on_burst():
    tm = _tm(cells_per_column=4)
    x = _codes(6)
    for i in range(6):
        tm.compute(x[i])
    counts = tm.cell_nseg.view(C, 4)
    # winners of bursting columns without matching segments have the fewest segments in their column
    tm.reset()
    before = counts.clone()
    tm.compute(_codes(1, seed=42)[0])
    win = tm.winner_cells[0].view(C, 4)
    for col in win.any(1).nonzero().squeeze(1).tolist():
        cell = int(win[col].nonzero())
        assert before[col, cell] == before[col].min()


def test_permanences_stay_in_bounds_and_limits_hold():
    tm = _tm(num_columns=32, cells_per_column=2, activation_threshold=3, min_threshold=2,
             max_new_synapse_count=6, max_segments_per_cell=3, max_synapses_per_segment=8,
             permanence_increment=0.3, permanence_decrement=0.2, predicted_segment_decrement=0.1)
    xs = _codes(160, num_columns=32, active=6, seed=3)
    for t in range(160):
        tm.compute(xs[t % 37] if t % 5 else xs[t])
    live = tm.seg_cell >= 0
    perm = tm.syn_perm[live][tm.syn_pre[live] != tm._pad]
    assert perm.min() >= 1e-6 and perm.max() <= 1.0
    assert int(tm.cell_nseg.max()) <= 3
    assert int((tm.syn_pre[live] != tm._pad).sum(1).max()) <= 8
    assert int(tm.seg_nsyn[live].min()) >= 2  # segments below min_threshold are destroyed
    # bookkeeping agrees with the rows
    assert torch.equal(tm.seg_nsyn[live], (tm.syn_pre[live] != tm._pad).sum(1).int())
    cells = torch.bincount(tm.seg_cell[live].long(), minlength=tm.cell_nseg.numel())
    assert torch.equal(cells.int(), tm.cell_nseg)


def test_seeded_runs_are_reproducible_and_seeds_matter():
    """The seed draws which previous winners a segment grows onto when it cannot take them all."""
    xs = _codes(60, streams=2, seed=1)

    def run(seed):
        tm = _tm(seed=seed, streams=2, max_new_synapse_count=8, activation_threshold=6, min_threshold=4)
        out = torch.stack([tm.compute(xs[t % 20]) for t in range(60)])
        return out, tm.segments(0)

    a, b, c = run(7), run(7), run(8)
    assert torch.equal(a[0], b[0]) and a[1] == b[1]
    assert a[1] != c[1]


def test_batched_streams_equal_single_stream_runs():
    streams = 4
    xs = _codes(36, streams=streams, seed=5)
    batched = _tm(seed=10, streams=streams)
    singles = [_tm(seed=10 + s) for s in range(streams)]
    for t in range(36):
        xt = xs[t % 13] if t % 7 else xs[t]
        anomaly = batched.compute(xt)
        for s, tm in enumerate(singles):
            assert float(tm.compute(xt[s:s + 1])[0]) == float(anomaly[s])
            assert torch.equal(tm.active_cells[0], batched.active_cells[s])
            assert torch.equal(tm.predictive_cells[0], batched.predictive_cells[s])
    for s, tm in enumerate(singles):
        assert tm.segments(0) == batched.segments(s)


def test_repeating_sequence_has_one_unpredicted_step_per_cycle_moving_forward():
    """The signature of the repeating benchmark (here a 20-element cycle, no resets): once learned,
    every cycle has exactly one fully unpredicted step and all others are fully predicted. The
    element after the wrap is predicted through cells other than those its successor learned, so the
    surprise moves on to the next element; it stays at each element for the cycles a new segment needs
    to connect: 1 + ceil((0.5 - 0.21) / 0.1) = 4."""
    n = 20
    tm = TemporalMemory(256, cells_per_column=8, streams=1, seed=3)
    seq = _codes(n, num_columns=256, active=20, seed=4)
    positions = []
    for cycle in range(40):
        a = torch.stack([tm.compute(seq[i])[0] for i in range(n)])
        if cycle >= 8:
            assert int((a == 1.0).sum()) == 1 and int((a == 0.0).sum()) == n - 1, (cycle, a)
            positions.append(int((a == 1.0).nonzero()))
    steps = [(b - a) % n for a, b in zip(positions, positions[1:])]
    assert set(steps) == {0, 1}
    moves = [i for i, d in enumerate(steps) if d == 1]
    assert all(b - a == 4 for a, b in zip(moves, moves[1:]))


def test_surprise_moves_one_element_per_cycle_when_segments_connect_at_birth():
    """With initial_permanence ≥ connected_permanence a new segment is active on the next cycle, so
    the single unpredicted step moves forward exactly one element every cycle (until it has gone
    round the whole sequence, after n cycles)."""
    n = 20
    tm = TemporalMemory(256, cells_per_column=8, streams=1, seed=3, initial_permanence=0.5)
    seq = _codes(n, num_columns=256, active=20, seed=4)
    positions = []
    for cycle in range(n - 1):
        a = torch.stack([tm.compute(seq[i])[0] for i in range(n)])
        if cycle >= 3:
            assert int((a == 1.0).sum()) == 1 and int((a == 0.0).sum()) == n - 1, (cycle, a)
            positions.append(int((a == 1.0).nonzero()))
    assert all((b - a) % n == 1 for a, b in zip(positions, positions[1:])), positions


def test_state_dict_round_trip_continues_identically():
    xs = _codes(40, streams=2, seed=8)
    tm = _tm(streams=2)
    for t in range(30):
        tm.compute(xs[t % 10])
    buf = io.BytesIO()
    torch.save(tm.state_dict(), buf)
    buf.seek(0)
    clone = _tm(streams=2)
    clone.load_state_dict(torch.load(buf))
    assert clone.segments(1) == tm.segments(1)
    assert torch.equal(clone.predictive_cells, tm.predictive_cells)
    for t in range(30, 40):
        assert torch.equal(clone.compute(xs[t % 10]), tm.compute(xs[t % 10]))
    assert clone.segments(0) == tm.segments(0)


@pytest.mark.parametrize("src,dst", [("native", "torch"), ("torch", "native")])
def test_checkpoints_move_between_the_c_kernel_and_the_torch_path(src, dst):
    from cogsim.htm import native_tm

    if native_tm.library() is None:
        pytest.skip("no C compiler: the native TM backend is unavailable")
    xs = _codes(50, streams=3, seed=4)
    tm = _tm(streams=3, backend=src)
    for t in range(35):
        tm.compute(xs[t % 12], learn=t % 9 != 8)
    clone = _tm(streams=3, backend=dst)
    clone.load_state_dict(tm.state_dict())
    assert clone.uses_native == (dst == "native") and tm.uses_native == (src == "native")
    assert torch.equal(clone.predictive_cells, tm.predictive_cells)
    for t in range(35, 50):
        assert torch.equal(clone.compute(xs[t % 12]), tm.compute(xs[t % 12])), t
        assert torch.equal(clone.winner_cells, tm.winner_cells), t
    for s in range(3):
        assert clone.segments(s) == tm.segments(s)
    copied = copy.deepcopy(tm)  # pickling hands the state over too
    assert torch.equal(copied.compute(xs[0]), clone.compute(xs[0]))


def test_reset_keeps_synapses_and_forgets_context():
    tm = _tm()
    abcd = _codes(4)
    for rep in range(6):
        tm.reset()
        for i in range(4):
            tm.compute(abcd[i])
    n = int(tm.num_synapses())
    tm.reset()
    assert not tm.predictive_cells.any() and not tm.active_cells.any()
    assert int(tm.num_synapses()) == n
    assert float(tm.compute(abcd[0], learn=False)[0]) == 1.0  # no context: A is a surprise
    assert float(tm.compute(abcd[1], learn=False)[0]) == 0.0  # B after A is predicted
    assert int(tm.num_synapses()) == n


def test_bad_input_shape_is_rejected():
    tm = _tm(streams=2)
    with pytest.raises(ValueError, match=r"shape \[2, 128\]"):
        tm.compute(torch.zeros(1, C, dtype=torch.bool))
    with pytest.raises(ValueError, match="min_threshold"):
        TemporalMemory(8, min_threshold=5, activation_threshold=3)


def test_dtype_conversions_leave_the_memory_exact():
    tm = _tm()
    abcd = _codes(4)
    for i in range(8):
        tm.compute(abcd[i % 4])
    before = tm.syn_perm.clone()
    tm.half()
    assert tm.syn_perm.dtype == torch.float32 and torch.equal(tm.syn_perm, before)
    tm.to("cpu")
    tm.compute(abcd[0])
