"""The batched TemporalMemory against a sequential reference: a plain-Python, column-by-column port
of htm.core's TemporalMemory (activateDendrites / activatePredictedColumn / burstColumn /
punishPredictedColumn, Connections adaptSegment / growSynapses / createSegment) that uses the same
documented tie-breaks and counter-based random draws, under htm.core's rules and NuPIC's. Small limits exercise pruning, punishment,
segment eviction and the synapse limit. Every step must agree exactly: anomaly, active, winner and
predictive cells, and every segment's synapses and permanences."""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
import torch

from cogsim.htm.connections import Connections
from cogsim.htm.counter_rng import SALT_GROW, SALT_LEAST_USED, hash32
from cogsim.htm import native_tm
from cogsim.htm.temporal_memory import TemporalMemory

F = np.float32


class ReferenceTM:
    """One stream, dictionaries and loops; htm.core's control flow."""

    def __init__(self, num_columns, cells_per_column, activation_threshold, initial_permanence,
                 connected_permanence, min_threshold, max_new_synapse_count, permanence_increment,
                 permanence_decrement, predicted_segment_decrement, max_segments_per_cell,
                 max_synapses_per_segment, seed, rules="htm.core"):
        self.C, self.K = num_columns, cells_per_column
        self.act_th, self.min_th, self.max_new = activation_threshold, min_threshold, max_new_synapse_count
        self.init = F(initial_permanence)
        self.inc, self.dec, self.psd = F(permanence_increment), F(permanence_decrement), F(predicted_segment_decrement)
        self.max_seg, self.max_syn, self.seed = max_segments_per_cell, max_synapses_per_segment, seed
        self.nupic = rules == "nupic"
        self.conn = F(connected_permanence) - F(1e-6)
        self.segs = {}  # uid -> {"cell", "syn": {pre: perm}, "last"}
        self.cell_segs = defaultdict(list)
        self.active, self.winners = set(), set()
        self.step = self.iteration = self.next_uid = 0
        self._dendrites()

    def _dendrites(self):
        self.pot, self.conn_n = {}, {}
        for uid, seg in self.segs.items():
            pot = sum(1 for p in seg["syn"] if p in self.active)
            con = sum(1 for p, q in seg["syn"].items() if p in self.active and q >= self.conn)
            self.pot[uid], self.conn_n[uid] = pot, con
        self.active_segs = sorted((u for u in self.segs if self.conn_n[u] >= self.act_th),
                                  key=lambda u: (self.segs[u]["cell"], u))
        self.matching_segs = sorted((u for u in self.segs if self.pot[u] >= self.min_th),
                                    key=lambda u: (self.segs[u]["cell"], u))
        self.predictive = {self.segs[u]["cell"] for u in self.active_segs}

    def _destroy(self, uid):
        self.cell_segs[self.segs[uid]["cell"]].remove(uid)
        del self.segs[uid]

    def _adapt(self, uid, prev_active, inc, dec):
        seg = self.segs[uid]
        for pre in list(seg["syn"]):
            upd = inc if pre in prev_active else -dec
            new = F(seg["syn"][pre] + upd)
            if new < F(1e-6):
                del seg["syn"][pre]
            else:
                seg["syn"][pre] = F(min(max(new, F(0)), F(1)))
        if len(seg["syn"]) < self.min_th:
            self._destroy(uid)
            return False
        return True

    def _grow(self, uid, prev_winners, n_desired):
        seg = self.segs[uid]["syn"]
        cands = sorted(prev_winners)
        n_actual = min(n_desired, len(cands))
        overrun = len(seg) + n_actual - self.max_syn
        if overrun > 0:
            victims = sorted((q, p) for p, q in seg.items() if p not in prev_winners)[:overrun]
            for _, p in victims:
                del seg[p]
            n_actual = min(n_actual, self.max_syn - len(seg))
        if n_actual <= 0:
            return
        if n_desired < len(cands):
            cands.sort(key=lambda c: hash32(SALT_GROW, self.step, self.seed, uid, c))
        target = len(seg) + n_actual
        for c in cands:
            if len(seg) == target:
                break
            if c in seg:
                seg[c] = max(seg[c], self.init)
            else:
                seg[c] = self.init

    def _least_used(self, col, prev_winners):
        cells = range(col * self.K, (col + 1) * self.K)
        if self.nupic:
            return min(cells, key=lambda c: (len(self.cell_segs[c]), hash32(SALT_LEAST_USED, self.step, self.seed, c)))
        reuse = [c for c in cells if c in prev_winners]
        return reuse[0] if reuse else min(cells, key=lambda c: (len(self.cell_segs[c]), c))

    def _weakest(self, cell):
        if self.nupic:
            return min(self.cell_segs[cell], key=lambda u: (self.segs[u]["last"], u))

        def strength(u):
            total = 0.0
            for q in sorted(float(p) * float(p) for p in self.segs[u]["syn"].values()):
                total += q
            return total
        return min(self.cell_segs[cell], key=lambda u: (strength(u), u))

    def compute(self, active_cols, learn=True):
        active_cols = set(active_cols)
        prev_active, prev_winners = self.active, self.winners
        if learn:
            self.iteration += 1
            for u in self.active_segs:
                self.segs[u]["last"] = self.iteration
        pred_cols = {c // self.K for c in self.predictive}
        anomaly = (len(active_cols - pred_cols) / len(active_cols)) if active_cols else 0.0
        by_col_active, by_col_matching = defaultdict(list), defaultdict(list)
        for u in self.active_segs:
            by_col_active[self.segs[u]["cell"] // self.K].append(u)
        for u in self.matching_segs:
            by_col_matching[self.segs[u]["cell"] // self.K].append(u)
        new_active, new_winners = set(), set()
        for col in sorted(active_cols | set(by_col_active) | set(by_col_matching)):
            if col in active_cols and by_col_active[col]:
                for u in by_col_active[col]:
                    cell = self.segs[u]["cell"]
                    new_active.add(cell)
                    new_winners.add(cell)
                    if learn:
                        pot = self.pot[u]
                        self._adapt(u, prev_active, self.inc, self.dec)
                        if self.max_new - pot > 0 and u in self.segs:
                            self._grow(u, prev_winners, self.max_new - pot)
            elif col in active_cols:
                new_active.update(range(col * self.K, (col + 1) * self.K))
                matching = by_col_matching[col]
                if matching:
                    best = max(matching, key=lambda u: (self.pot[u], -self.segs[u]["cell"], -u))
                    winner = self.segs[best]["cell"]
                else:
                    best, winner = None, self._least_used(col, prev_winners)
                new_winners.add(winner)
                if learn and best is not None:
                    pot = self.pot[best]
                    self._adapt(best, prev_active, self.inc, self.dec)
                    if self.max_new - pot > 0 and best in self.segs:
                        self._grow(best, prev_winners, self.max_new - pot)
                elif learn and prev_winners:
                    while len(self.cell_segs[winner]) >= self.max_seg:
                        self._destroy(self._weakest(winner))
                    uid = self.next_uid
                    self.next_uid += 1
                    self.segs[uid] = {"cell": winner, "syn": {}, "last": self.iteration}
                    self.cell_segs[winner].append(uid)
                    self._grow(uid, prev_winners, min(self.max_new, len(prev_winners)))
            elif learn and self.psd > 0:
                for u in by_col_matching[col]:
                    self._adapt(u, prev_active, -self.psd, F(0))
        self.active, self.winners = new_active, new_winners
        self.step += 1
        self._dendrites()
        return anomaly

    def dump(self):
        return sorted((s["cell"], sorted(s["syn"].items())) for s in self.segs.values())


def _tm_dump(tm, stream):
    return sorted((cell, sorted((p, np.float32(q)) for p, q in syns)) for cell, syns in tm.segments(stream))


def _cells(mask_row):
    return set(mask_row.nonzero().squeeze(1).tolist())


CONFIGS = {
    # small limits: pruning, punishment, eviction, synapse limit all happen
    "limits": dict(num_columns=24, cells_per_column=4, activation_threshold=3, initial_permanence=0.3,
                   connected_permanence=0.5, min_threshold=2, max_new_synapse_count=4,
                   permanence_increment=0.1, permanence_decrement=0.15, predicted_segment_decrement=0.05,
                   max_segments_per_cell=2, max_synapses_per_segment=5),
    # heavy pruning: segments die often, so the pool is compacted while learning
    "churn": dict(num_columns=24, cells_per_column=3, activation_threshold=3, initial_permanence=0.3,
                  connected_permanence=0.5, min_threshold=3, max_new_synapse_count=5,
                  permanence_increment=0.05, permanence_decrement=0.3, predicted_segment_decrement=0.2,
                  max_segments_per_cell=4, max_synapses_per_segment=6),
    # htm.core defaults (scaled input): growth, shuffle and no-shuffle branches
    "defaults": dict(num_columns=64, cells_per_column=6, activation_threshold=5, initial_permanence=0.21,
                     connected_permanence=0.5, min_threshold=3, max_new_synapse_count=8,
                     permanence_increment=0.1, permanence_decrement=0.1, predicted_segment_decrement=0.0,
                     max_segments_per_cell=255, max_synapses_per_segment=255),
}


def _inputs(num_columns, steps, n_active, streams, seed):
    """A noisy repeating sequence per stream (learnable, but with surprises)."""
    g = torch.Generator().manual_seed(seed)
    alphabet = [torch.randperm(num_columns, generator=g)[:n_active] for _ in range(7)]
    out = torch.zeros(steps, streams, num_columns, dtype=torch.bool)
    for s in range(streams):
        order = torch.randint(0, 7, (5,), generator=g).tolist()
        for t in range(steps):
            if torch.rand((), generator=g) < 0.15:
                cols = torch.randperm(num_columns, generator=g)[:n_active]
            else:
                cols = alphabet[order[t % len(order)]]
            out[t, s, cols] = True
    return out


@pytest.mark.parametrize("name,search,backend,rules",
                         [(n, "auto", b, "htm.core") for n in sorted(CONFIGS) for b in ("torch", "native")]
                         + [("limits", "scan", "torch", "htm.core"), ("limits", "touched", "torch", "htm.core")]
                         + [(n, "auto", b, "nupic") for n in ("limits", "churn") for b in ("torch", "native")])
def test_batched_tm_matches_sequential_reference(name, search, backend, rules, monkeypatch):
    """Both backends (the torch path and the C kernel) against the per-stream reference, step by step."""
    cfg = CONFIGS[name]
    if backend == "native" and native_tm.library() is None:
        pytest.skip("no C compiler: the native TM backend is unavailable")
    if backend == "native":
        monkeypatch.setenv("COGSIM_HTM_THREADS", "3")  # a thread per stream, work size notwithstanding
    # both ways of finding candidate segments (scan the pool, or only the touched segments)
    monkeypatch.setattr(TemporalMemory, "_sparse_ratio", {"auto": 4, "scan": 0, "touched": 10 ** 9}[search])
    compactions = []
    original = Connections._compact
    monkeypatch.setattr(Connections, "_compact", lambda self: (compactions.append(1), original(self)))
    streams, steps, seed = 3, 100, 5
    xs = _inputs(cfg["num_columns"], steps, 6, streams, seed=11)
    tm = TemporalMemory(**cfg, seed=seed, streams=streams, backend=backend, rules=rules)
    refs = [ReferenceTM(**cfg, seed=seed + s, rules=rules) for s in range(streams)]
    for t in range(steps):
        learn = t % 17 != 16  # a few inference-only steps
        anomaly = tm.compute(xs[t], learn=learn)
        for s, ref in enumerate(refs):
            a = ref.compute(xs[t, s].nonzero().squeeze(1).tolist(), learn=learn)
            assert abs(float(anomaly[s]) - a) < 1e-6, (t, s)
            assert _cells(tm.active_cells[s]) == ref.active, (t, s)
            assert _cells(tm.winner_cells[s]) == ref.winners, (t, s)
            assert _cells(tm.predictive_cells[s]) == ref.predictive, (t, s)
            assert _tm_dump(tm, s) == ref.dump(), (t, s)
    if name == "churn" and backend == "torch":
        assert compactions
    if name == "limits":  # the scenario did exercise the limits
        assert max(len(v) for ref in refs for v in ref.cell_segs.values()) == cfg["max_segments_per_cell"]
        assert max(len(s["syn"]) for ref in refs for s in ref.segs.values()) == cfg["max_synapses_per_segment"]
