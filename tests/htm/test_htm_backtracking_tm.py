"""Backtracking temporal memory: the C kernel equals the Python reference step by step, and the
memory behaves as NuPIC's does on small sequences (learning, confident columns, resets, streams)."""
import numpy as np
import pytest
import torch

from cogsim.htm.backtracking_tm import LIBRARY, STATES, BacktrackingTM

needs_kernel = pytest.mark.skipif(LIBRARY.get() is None, reason="no C compiler for the native kernel")

SMALL = dict(num_columns=64, cells_per_column=4, activation_threshold=3, min_threshold=2, new_synapse_count=4,
             max_segments_per_cell=3, max_synapses_per_segment=5, initial_permanence=0.21, connected_permanence=0.3,
             permanence_increment=0.1, permanence_decrement=0.05, pam_length=2, max_inf_backtrack=4,
             max_lrn_backtrack=3, max_seq_length=8, seed=7)


def one_hot(streams, columns, active_lists):
    x = torch.zeros(streams, columns, dtype=torch.bool)
    for s, cols in enumerate(active_lists):
        x[s, list(cols)] = True
    return x


def noisy_sequences(rng, streams, columns, length, width, steps, noise):
    """Each stream repeats its own sequence of random codes; a fraction ``noise`` of steps is a fresh code."""
    seqs = [rng.choice(columns, size=(length, width)) for _ in range(streams)]
    for t in range(steps):
        yield [rng.choice(columns, width, replace=False) if rng.random() < noise else seqs[s][t % length]
               for s in range(streams)]


@needs_kernel
@pytest.mark.parametrize("params", [
    {},  # small limits: segments evicted, synapses freed for new ones
    {"cells_per_column": 1, "max_segments_per_cell": 6, "max_synapses_per_segment": 8, "new_synapse_count": 6},
    {"max_inf_backtrack": 0, "max_lrn_backtrack": 0, "max_seq_length": 0, "pam_length": 1},
])
def test_kernel_equals_reference(params):
    kw = {**SMALL, **params, "streams": 2}
    native, ref = BacktrackingTM(backend="native", **kw), BacktrackingTM(backend="reference", **kw)
    assert native.uses_native and not ref.uses_native
    rng = np.random.default_rng(3)
    for t, cols in enumerate(noisy_sequences(rng, 2, 64, length=10, width=6, steps=260, noise=0.15)):
        x = one_hot(2, 64, cols)
        assert torch.equal(native.compute(x), ref.compute(x)), f"step {t}"
        if t == 130:
            native.reset()
            ref.reset()
        if t % 20 == 0 or t == 259:
            for s in range(2):
                for name in STATES:
                    assert np.array_equal(native.state(name, s), ref.state(name, s)), (t, s, name)
                assert native.segments(s) == ref.segments(s), (t, s)
    stats = native.stats()
    assert np.array_equal(stats["segments"], ref.stats()["segments"])
    assert np.array_equal(stats["synapses"], ref.stats()["synapses"])
    assert int(stats["segments"].min()) > 50  # learning happened


def repeat_sequence(tm, codes, times, columns):
    """Feed the codes ``times`` times in order; the anomalies per pass [times, len(codes)]."""
    out = np.zeros((times, len(codes)))
    for r in range(times):
        for i, code in enumerate(codes):
            out[r, i] = float(tm.compute(one_hot(1, columns, [code]))[0])
    return out


@pytest.mark.parametrize("backend", ["auto", "reference"])
def test_learns_a_repeating_sequence(backend):
    """NuPIC's NAB settings, 6 codes of 40 columns repeated: fully unpredicted at first, learned after
    a few passes (new synapses start at 0.21 and connect at 0.5, so a transition needs three
    reinforcements), and a new code is unpredicted again."""
    rng = np.random.default_rng(0)
    codes = [rng.choice(512, 40, replace=False) for _ in range(6)]
    tm = BacktrackingTM(512, backend=backend)
    anomaly = repeat_sequence(tm, codes, 12, 512)
    assert np.all(anomaly[0] == 1.0)
    assert np.all(anomaly[-3:] == 0.0)
    confident = tm.state("confident_columns")
    assert set(np.flatnonzero(confident)) == set(codes[0].tolist())  # after the last code, the first is expected
    assert float(tm.compute(one_hot(1, 512, [rng.choice(512, 40, replace=False)]))[0]) > 0.8
    pred = tm.state("predicted").reshape(512, 32)
    assert np.all(pred.sum(1) <= 32) and tm.stats()["segments"][0] > 0


def test_streams_are_independent_and_seeded_by_position():
    """Stream s of a batch equals a one-stream memory seeded seed + s."""
    rng = np.random.default_rng(1)
    kw = {**SMALL, "num_columns": 64}
    batch = BacktrackingTM(**kw, streams=3)
    singles = [BacktrackingTM(**{**kw, "seed": kw["seed"] + s}) for s in range(3)]
    for cols in noisy_sequences(rng, 3, 64, length=7, width=6, steps=150, noise=0.3):
        got = batch.compute(one_hot(3, 64, cols))
        want = torch.cat([m.compute(one_hot(1, 64, [c])) for m, c in zip(singles, cols)])
        assert torch.equal(got, want)
    assert [m.segments(0) for m in singles] == [batch.segments(s) for s in range(3)]


def test_reset_starts_on_start_cells():
    """After a reset the next input activates the first cell of each active column only."""
    rng = np.random.default_rng(2)
    tm = BacktrackingTM(**SMALL)
    for cols in noisy_sequences(rng, 1, 64, length=5, width=6, steps=40, noise=0.0):
        tm.compute(one_hot(1, 64, cols))
    tm.reset()
    assert not tm.state("confident_columns").any() and not tm.state("active").any()
    code = [3, 9, 17, 33, 40, 60]
    assert float(tm.compute(one_hot(1, 64, [code]))[0]) == 1.0  # nothing is confident after a reset
    active = np.flatnonzero(tm.state("active"))
    assert active.tolist() == [c * 4 for c in code]


def test_empty_input_and_bad_arguments():
    tm = BacktrackingTM(**SMALL, streams=2)
    assert tm.compute(torch.zeros(2, 64, dtype=torch.bool)).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match=r"active_columns must have shape \[2, 64\]"):
        tm.compute(torch.zeros(1, 64, dtype=torch.bool))
    with pytest.raises(ValueError, match="state must be one of"):
        tm.state("bogus")
    for bad, message in [({"cells_per_column": 0}, "cells_per_column must be ≥ 1"),
                         ({"connected_permanence": 1.5}, r"connected_permanence must be in \[0, 1\]"),
                         ({"new_synapse_count": 9}, r"new_synapse_count \(9\) must be ≤ max_synapses_per_segment"),
                         ({"backend": "gpu"}, "backend must be auto, native or reference")]:
        with pytest.raises(ValueError, match=message):
            BacktrackingTM(**{**SMALL, **bad})


@pytest.mark.parametrize("backend", ["auto", "reference"])
def test_run_equals_step_by_step(backend):
    """Whole sequences over threads (streams of unequal length, one left alone, per-stream seeds)
    give what compute gives step by step."""
    rng = np.random.default_rng(4)
    lengths = [90, 0, 140, 60]
    seqs = [[rng.choice(64, 6, replace=False) if rng.random() < 0.2 else np.arange(6) * 9 + (t % 7)
             for t in range(n)] for n in lengths]
    seeds = [5, 5, 11, 5]
    batch = BacktrackingTM(**SMALL, streams=4, seeds=seeds, backend=backend, threads=2)
    got = batch.run([seq if seq else None for seq in seqs])
    for s, seq in enumerate(seqs):
        single = BacktrackingTM(**{**SMALL, "seed": seeds[s]}, backend=backend)
        want = [float(single.compute(one_hot(1, 64, [x]))[0]) for x in seq]
        assert got[s].tolist() == want
        assert single.segments(0) == batch.segments(s)
    assert got[1].size == 0 and batch.stats()["segments"][1] == 0
    with pytest.raises(ValueError, match=r"sequences\[2\]\[0\]: column ids must be in \[0, 64\)"):
        batch.run([None, None, [np.array([64])], None])
