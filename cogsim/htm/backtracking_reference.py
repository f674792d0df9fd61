"""The backtracking temporal memory, one stream, in plain Python: the C kernel's specification.

It makes the C kernel's decisions in the same order and draws the same random numbers (splitmix64
from ``seed + stream``), with float32 permanences and duty cycles, so tests can hold the two equal
step by step. :class:`cogsim.htm.backtracking_tm.BacktrackingTM` runs it when no C compiler is found
(slowly: milliseconds a step). The rules are in docs/design.md ("Backtracking temporal memory").
"""
from __future__ import annotations

import math

import numpy as np

F32 = np.float32
_MASK = (1 << 64) - 1
#: NuPIC's duty-cycle tiers (learning iterations) and the moving-average rate used past each
TIERS = (0, 100, 320, 1000, 3200, 10000, 32000, 100000, 320000)
ALPHAS = tuple(F32(a) for a in (0.0, 0.0032, 0.0010, 0.00032, 0.00010, 0.000032, 0.000010, 0.0000032, 0.0000010))


class SplitMix64:
    """The kernel's random numbers: splitmix64, and ``below(n)`` = top 32 bits mod n."""

    def __init__(self, seed: int):
        self.state = seed & _MASK

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & _MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)

    def below(self, n: int) -> int:
        return (self.next() >> 32) % n


class _Segment:
    __slots__ = ("cell", "slot", "uid", "src", "perm", "pos", "tot", "dc", "dc_iter")

    def __init__(self, cell, slot, uid, src, perm, iteration):
        self.cell, self.slot, self.uid, self.src, self.perm = cell, slot, uid, src, perm
        self.pos, self.tot = 1, 1
        self.dc, self.dc_iter = F32(1) / F32(max(iteration, 1)), iteration


class ReferenceBTM:
    """One stream. ``params`` as :class:`cogsim.htm.backtracking_tm.BacktrackingTM` builds them;
    random numbers from ``seed`` (default ``params["seed"] + stream``)."""

    def __init__(self, params: dict, stream: int = 0, seed: int | None = None):
        p = params
        self.C, self.K = p["columns"], p["cells_per_column"]
        self.act_th, self.min_th, self.new_syn = p["activation_threshold"], p["min_threshold"], p["new_synapse_count"]
        self.max_seg, self.max_syn = p["max_segments_per_cell"], p["max_synapses_per_segment"]
        self.pam_len, self.max_inf_bt, self.max_lrn_bt = p["pam_length"], p["max_inf_backtrack"], p["max_lrn_backtrack"]
        self.max_seq = p["max_seq_length"]
        self.init, self.conn = F32(p["initial_permanence"]), F32(p["connected_permanence"])
        self.inc, self.dec, self.pmax = F32(p["permanence_increment"]), F32(p["permanence_decrement"]), F32(p["permanence_max"])
        self.rng = SplitMix64(p["seed"] + stream if seed is None else seed)
        self.segs: dict[int, _Segment] = {}
        self.next_uid = 0
        self.cell_slots: dict[int, list] = {}  # cell -> segment uids by slot (None: freed)
        self.out: dict[int, set] = {}  # presynaptic cell -> uids of segments with a synapse from it
        self.inf_act, self.inf_pred, self.conf_cols = set(), set(), set()
        self.lrn_act, self.lrn_pred = set(), set()
        self.inf_hist: list[list[int]] = []
        self.lrn_hist: list[list[int]] = []
        self.updates: list[tuple] = []  # (cell, uid, stamp, names)
        self.pam, self.seq_len, self.reset_called = self.pam_len, 0, False
        self.lrn_iter, self.avg_density = 0, F32(0)

    # ---- segments ----
    def _create(self, cell: int, srcs: list[int]) -> None:
        slots = self.cell_slots.setdefault(cell, [])
        uid = self.next_uid
        self.next_uid += 1
        slot = slots.index(None) if None in slots else len(slots)
        if slot == len(slots):
            slots.append(uid)
        else:
            slots[slot] = uid
        srcs = srcs[: self.max_syn]
        self.segs[uid] = _Segment(cell, slot, uid, list(srcs), [self.init] * len(srcs), self.lrn_iter)
        for c in srcs:
            self.out.setdefault(c, set()).add(uid)

    def _release(self, uid: int) -> None:
        seg = self.segs.pop(uid)
        for c in seg.src:
            self.out[c].discard(uid)
        self.cell_slots[seg.cell][seg.slot] = None

    def _duty_cycle(self, seg: _Segment, active: bool) -> F32:
        it = self.lrn_iter
        if it <= 0:
            return seg.dc
        if it <= TIERS[1]:
            seg.dc, seg.dc_iter = F32(seg.pos) / F32(it), it
            return seg.dc
        age = it - seg.dc_iter
        if age == 0 and not active:
            return seg.dc
        alpha = next(ALPHAS[t] for t in range(len(TIERS) - 1, 0, -1) if it > TIERS[t])
        dc = F32(math.pow(1.0 - float(alpha), age) * float(seg.dc))
        if active:
            dc = F32(dc + alpha)
        seg.dc, seg.dc_iter = dc, it
        return dc

    def _counts(self, cells) -> dict[int, int]:
        """Synapses (any permanence) of every segment onto ``cells``."""
        counts: dict[int, int] = {}
        for c in cells:
            for uid in self.out.get(c, ()):
                counts[uid] = counts.get(uid, 0) + 1
        return counts

    def _seg_active(self, seg: _Segment, cells) -> bool:
        return sum(1 for c, p in zip(seg.src, seg.perm) if p >= self.conn and c in cells) >= self.act_th

    def _best_per_column(self, counts: dict[int, int], threshold: int) -> dict[int, int]:
        """Per column, the segment with the most counts ≥ threshold (ties: higher cell, lower slot)."""
        best: dict[int, tuple] = {}
        for uid, n in counts.items():
            if n < threshold:
                continue
            seg = self.segs[uid]
            key = (n, seg.cell, -seg.slot)
            col = seg.cell // self.K
            if col not in best or key > best[col][0]:
                best[col] = (key, uid)
        return {col: uid for col, (_, uid) in best.items()}

    # ---- inference ----
    def _infer_phase1(self, cols, start_cells: bool, pred1: set) -> bool:
        K = self.K
        self.inf_act = set()
        if start_cells:
            self.inf_act = {c * K for c in cols}
            return True
        predicted = 0
        for c in cols:
            cells = [c * K + k for k in range(K) if c * K + k in pred1]
            if cells:
                predicted += 1
                self.inf_act.update(cells)
            else:
                self.inf_act.update(range(c * K, c * K + K))
        return predicted >= 0.5 * len(cols)

    def _infer_phase2(self) -> bool:
        self.inf_pred, self.conf_cols = set(), set()
        pred_cols = set()
        for uid, n in self._counts(self.inf_act).items():
            if n < self.act_th:
                continue
            seg = self.segs[uid]
            self.conf_cols.add(seg.cell // self.K)  # NuPIC adds the duty cycle, which stays > 0
            if self._seg_active(seg, self.inf_act):
                self.inf_pred.add(seg.cell)
                pred_cols.add(seg.cell // self.K)
        return len(pred_cols) >= 0.5 * float(self.avg_density)

    def _infer_backtrack(self) -> None:
        h = self.inf_hist
        if not h:
            return
        backup = self.inf_act
        chosen = None
        for start in range(len(h)):
            in_seq = False
            for off in range(start, len(h)):
                in_seq = self._infer_phase1(h[off], off == start, self.inf_pred)
                if not in_seq:
                    break
                in_seq = self._infer_phase2()
                if not in_seq:
                    break
            if in_seq:
                chosen = start
                break
        if chosen is None:
            self.inf_act = backup
            self._infer_phase2()
        del h[: (chosen + 1 if chosen is not None else len(h))]

    def _update_inference(self, cols) -> None:
        if self.max_inf_bt > 0:
            if len(self.inf_hist) > self.max_inf_bt:
                self.inf_hist.pop(0)
            self.inf_hist.append(cols)
        if not self._infer_phase1(cols, self.reset_called, self.inf_pred):
            self._infer_backtrack()
        elif not self._infer_phase2():
            self._infer_backtrack()

    # ---- learning ----
    def _compute_update(self, seg: _Segment | None, state: set) -> list[int]:
        have = seg.src if seg is not None else []
        names = [c for c in have if c in state]
        want = self.new_syn - len(names)
        if want > 0:
            owned = set(have)
            pool = [c for c in sorted(state) if c not in owned]
            if len(pool) <= want:
                names += pool
            elif want == 1:
                names.append(pool[self.rng.below(len(pool))])
            else:
                for i in range(want):
                    j = i + self.rng.below(len(pool) - i)
                    pool[i], pool[j] = pool[j], pool[i]
                names += pool[:want]
            names.sort()
        return names

    def _adapt(self, seg: _Segment, names: list[int]) -> None:
        seg.pos += 1
        self._duty_cycle(seg, True)
        named = set(names)
        src, perm, flag = [], [], []
        for c, p in zip(seg.src, seg.perm):
            if c in named:
                p = min(F32(p + self.inc), self.pmax)
            else:
                p = min(F32(p - self.dec), self.pmax)
                if p <= 0:
                    self.out[c].discard(seg.uid)
                    continue
            src.append(c)
            perm.append(p)
            flag.append(c in named)
        have = set(src)
        new = [c for c in names if c not in have]
        if len(src) + len(new) > self.max_syn:
            free_n = min(len(src) + len(new) - self.max_syn, len(src))
            keys = [p + (self.pmax if f else F32(0)) for p, f in zip(perm, flag)]
            drop = set(sorted(range(len(src)), key=lambda i: keys[i])[:free_n])  # stable: ties by position
            for i in drop:
                self.out[src[i]].discard(seg.uid)
            src = [c for i, c in enumerate(src) if i not in drop]
            perm = [p for i, p in enumerate(perm) if i not in drop]
            new = new[: self.max_syn - len(src)]
        for c in new:
            self.out.setdefault(c, set()).add(seg.uid)
        merged = sorted(list(zip(src, perm)) + [(c, self.init) for c in new])
        seg.src, seg.perm = [c for c, _ in merged], [p for _, p in merged]
        if not seg.src:
            self._release(seg.uid)

    def _cell_for_new_segment(self, col: int) -> int:
        K = self.K
        cells = range(col * K + (1 if K > 1 else 0), col * K + K)
        free = [c for c in cells if len(self.cell_slots.get(c, ())) < self.max_seg]
        if free:
            return free[self.rng.below(len(free))]
        best, best_cell, best_dc = None, cells[0], F32(1)
        for c in cells:
            for uid in self.cell_slots.get(c, ()):
                if uid is None:
                    continue
                dc = self._duty_cycle(self.segs[uid], False)
                if dc < best_dc:
                    best, best_cell, best_dc = uid, c, dc
        if best is not None:
            self.updates = [u for u in self.updates if u[1] != best]
            self._release(best)
        return best_cell

    def _learn_phase1(self, cols, read_only: bool, act1: set, pred1: set) -> bool:
        K = self.K
        self.lrn_act = set()
        best = {} if read_only else self._best_per_column(self._counts(act1), self.min_th)
        unpredicted = 0
        for col in cols:
            p = next((col * K + k for k in range(K) if col * K + k in pred1), None)
            if p is not None:
                self.lrn_act.add(p)
                continue
            unpredicted += 1
            if read_only:
                continue
            uid = best.get(col)
            if uid is not None:
                seg = self.segs[uid]
                self.lrn_act.add(seg.cell)
                names = self._compute_update(seg, act1)
                seg.tot += 1
                if names:
                    self._adapt(seg, names)
            else:
                cell = self._cell_for_new_segment(col)
                self.lrn_act.add(cell)
                names = self._compute_update(None, act1)
                if names:
                    self._create(cell, names)
        return unpredicted < len(cols) // 2

    def _learn_phase2(self, read_only: bool) -> None:
        best = self._best_per_column(self._counts(self.lrn_act), self.act_th)
        self.lrn_pred = set()
        for col in sorted(best):
            seg = self.segs[best[col]]
            self.lrn_pred.add(seg.cell)
            if read_only:
                continue
            names = self._compute_update(seg, self.lrn_act)
            seg.tot += 1
            if names:
                self.updates.append((seg.cell, seg.uid, self.lrn_iter, names))

    def _process_updates(self, cols) -> None:
        on = set(cols)
        for cell, uid, stamp, names in self.updates:
            if self.lrn_iter - stamp > 1 or cell // self.K not in on:
                continue
            seg = self.segs.get(uid)
            if seg is not None:
                self._adapt(seg, names)
        self.updates = []

    def _learn_backtrack_from(self, start: int, read_only: bool) -> bool:
        h = self.lrn_hist
        if not read_only:
            self.updates = []
        in_seq = True
        for off in range(start, len(h)):
            act1, pred1 = self.lrn_act, self.lrn_pred
            if not read_only:
                self._process_updates(h[off])
            if off == start:
                self.lrn_act = {c * self.K for c in h[off]}
                in_seq = True
            else:
                in_seq = self._learn_phase1(h[off], read_only, act1, pred1)
            if not in_seq or off == len(h) - 1:
                break
            self._learn_phase2(read_only)
        return in_seq

    def _learn_backtrack(self) -> int:
        h = self.lrn_hist
        nprev = max(len(h) - 1, 0)
        if nprev <= 0:
            return 0
        start = next((s for s in range(nprev) if self._learn_backtrack_from(s, True)), None)
        if start is None:
            h.clear()
            return 0
        self._learn_backtrack_from(start, False)
        del h[: start + 1]
        return nprev - start

    def _update_learning(self, cols) -> None:
        act1, pred1 = self.lrn_act, self.lrn_pred
        if self.max_lrn_bt > 0:
            if len(self.lrn_hist) > self.max_lrn_bt:
                self.lrn_hist.pop(0)
            self.lrn_hist.append(cols)
        self._process_updates(cols)
        if self.pam > 0:
            self.pam -= 1
        self.seq_len += 1
        if not self.reset_called and self._learn_phase1(cols, False, act1, pred1):
            self.pam = self.pam_len
        if self.reset_called or self.pam == 0 or (self.max_seq != 0 and self.seq_len >= self.max_seq):
            back = 0 if self.reset_called else self._learn_backtrack()
            if self.reset_called or back == 0:
                self.lrn_act = {c * self.K for c in cols}
                self.lrn_hist.clear()
            self.pam, self.seq_len = self.pam_len, back
            self.updates = []
        self._learn_phase2(False)

    # ---- API ----
    def compute(self, active_columns, learn: bool = True) -> float:
        """One step; the raw anomaly of ``active_columns`` (ascending ids) against the confident
        columns of the previous step."""
        cols = [int(c) for c in active_columns]
        hit = sum(1 for c in cols if c in self.conf_cols)
        anomaly = F32(len(cols) - hit) / F32(len(cols)) if cols else F32(0)
        if learn:
            self.lrn_iter += 1
            if self.lrn_iter in TIERS:
                for seg in self.segs.values():
                    self._duty_cycle(seg, False)
        self.avg_density = F32(len(cols)) if self.avg_density == 0 else F32(
            F32(0.99) * self.avg_density + F32(0.01) * F32(len(cols)))
        self._update_inference(cols)
        if learn:
            self._update_learning(cols)
        self.reset_called = False
        return float(anomaly)

    def reset(self) -> None:
        self.inf_act, self.inf_pred, self.conf_cols = set(), set(), set()
        self.lrn_act, self.lrn_pred = set(), set()
        self.updates, self.inf_hist, self.lrn_hist = [], [], []
        self.reset_called = True

    def state(self, name: str, size: int) -> np.ndarray:
        cells = {"active": self.inf_act, "predicted": self.inf_pred, "learn_active": self.lrn_act,
                 "learn_predicted": self.lrn_pred, "confident_columns": self.conf_cols}[name]
        out = np.zeros(size, dtype=bool)
        out[list(cells)] = True
        return out

    def segment_list(self) -> list[tuple[int, list[int], list[float]]]:
        return sorted((s.cell, list(s.src), [float(p) for p in s.perm]) for s in self.segs.values())

    def num_segments(self) -> int:
        return len(self.segs)

    def num_synapses(self) -> int:
        return sum(len(s.src) for s in self.segs.values())
