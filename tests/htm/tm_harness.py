"""Helpers of the temporal-memory tests ported from htm.core: a memory with htm.core's positional
parameters, hand-wired segments (htm.core's ``createSegment``/``createSynapse``), and readable views
of cells and synapses (stream 0)."""
from __future__ import annotations

import pytest
import torch

from cogsim.htm import native_tm
from cogsim.htm.temporal_memory import TemporalMemory

BACKENDS = ["torch", pytest.param("native", marks=pytest.mark.skipif(
    native_tm.library() is None, reason="no C compiler: the native TM backend is unavailable"))]


def make(backend, num_columns=32, cells_per_column=4, activation_threshold=3, initial_permanence=0.21,
         connected_permanence=0.5, min_threshold=2, max_new_synapse_count=3, permanence_increment=0.1,
         permanence_decrement=0.1, predicted_segment_decrement=0.0, seed=42, max_segments_per_cell=255,
         max_synapses_per_segment=255, **kw):
    """A one-stream memory with htm.core's positional parameters (the defaults of most cases)."""
    return TemporalMemory(num_columns, cells_per_column=cells_per_column,
                          activation_threshold=activation_threshold, initial_permanence=initial_permanence,
                          connected_permanence=connected_permanence, min_threshold=min_threshold,
                          max_new_synapse_count=max_new_synapse_count, permanence_increment=permanence_increment,
                          permanence_decrement=permanence_decrement,
                          predicted_segment_decrement=predicted_segment_decrement, seed=seed,
                          max_segments_per_cell=max_segments_per_cell,
                          max_synapses_per_segment=max_synapses_per_segment, backend=backend, **kw)


def wire(tm: TemporalMemory, cell: int, synapses: dict[int, float]) -> None:
    """createSegment(cell) + createSynapse(pre, permanence) for each synapse, on stream 0, written
    into the checkpoint and loaded back (the cell must be below max_segments_per_cell)."""
    sd = tm.state_dict()
    S, N = tm.streams, tm.num_cells
    pad = S * N
    cap = sd["seg_cell"].numel() // S
    top = int(sd["seg_top"][0])
    width = sd["syn_pre"].shape[1]
    assert int(sd["cell_nseg"][cell]) < tm.max_segments_per_cell
    if top == cap or len(synapses) > width:  # room for one more segment, and a row wide enough
        new_cap, new_width = cap + 8, max(width, len(synapses))
        for name, fill in (("syn_pre", pad), ("syn_perm", 0.0), ("seg_cell", -1), ("seg_uid", 0),
                           ("seg_last", 0), ("seg_nsyn", 0)):
            t = sd[name]
            tail = (new_width,) if t.dim() == 2 else ()
            out = torch.full((S, new_cap) + tail, fill, dtype=t.dtype)
            if t.dim() == 2:
                out[:, :cap, :width] = t.view(S, cap, width)
            else:
                out[:, :cap] = t.view(S, cap)
            sd[name] = out.view((S * new_cap,) + tail)
    row = top
    sd["seg_cell"][row] = cell
    sd["seg_uid"][row] = sd["next_uid"][0]
    sd["seg_last"][row] = sd["counters"][1]
    for k, (pre, perm) in enumerate(synapses.items()):
        sd["syn_pre"][row, k] = pre
        sd["syn_perm"][row, k] = perm
    sd["seg_nsyn"][row] = len(synapses)
    sd["seg_top"][0] += 1
    sd["next_uid"][0] += 1
    sd["cell_nseg"][cell] += 1
    tm.load_state_dict(sd)


def cols(*c, n=32):
    x = torch.zeros(1, n, dtype=torch.bool)
    x[0, list(c)] = True
    return x


def cells(mask) -> list[int]:
    return mask[0].nonzero().squeeze(1).tolist()


def segs_of(tm, cell) -> list[dict[int, float]]:
    """The synapses {presynaptic cell: permanence} of each segment on ``cell``, in creation order
    (but an evicted segment's successor takes its place on the torch path)."""
    return [dict(syn) for c, syn in tm.segments(0) if c == cell]


def perm(tm, cell, pre, seg=0) -> float:
    return segs_of(tm, cell)[seg][pre]


def n_segments(tm) -> int:
    return int(tm.num_segments()[0])


def dump(tm):
    return sorted((c, sorted(s)) for c, s in tm.segments(0))
