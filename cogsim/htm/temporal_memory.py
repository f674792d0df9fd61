"""HTM temporal memory with htm.core's semantics, batched over independent streams, in plain torch.

All streams advance together, one ``compute`` per time step, with no Python loop over streams,
columns, cells or segments; counter-based randomness makes stream ``s`` equal a one-stream TM seeded
``seed + s``. On a CPU the step runs in the bit-exact C kernel of :mod:`cogsim.htm.native_tm`. The
rules are in docs/design.md §5.2.3: htm.core's by default, NuPIC's tie-break, winner reuse and
eviction with ``rules="nupic"``; docs/htm.md tables every difference from htm.core. Storage is
:mod:`cogsim.htm.connections`.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

from cogsim.htm.counter_rng import SALT_GROW, SALT_LEAST_USED, hash32, hash_fold
from cogsim.htm.connections import _SCAN, Connections

#: buffers the native backend keeps in its own structures, written out on demand
_NATIVE_EXPORTED = ("syn_pre", "syn_perm", "seg_cell", "seg_uid", "seg_last", "seg_nsyn", "seg_top", "next_uid",
                    "cell_nseg")
BACKENDS = ("auto", "native", "torch")
#: where htm.core and NuPIC differ (tie-break, winner reuse, eviction): see the module docstring
RULES = ("htm.core", "nupic")

EPSILON = 1e-6  # htm::Epsilon
_I64 = torch.int64


def _f32(x: float) -> float:
    return float(np.float32(x))


@contextlib.contextmanager
def intra_op_threads(n: int = 1):
    """Run a stretch of TM/SP steps with ``n`` torch intra-op threads (restored afterwards). A step
    is many small ops; more threads only add synchronisation, which on a busy CPU costs
    milliseconds per op. Wrap loops, not single steps (switching has a cost of its own)."""
    old = torch.get_num_threads()
    if old != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if old != n:
            torch.set_num_threads(old)


class TemporalMemory(Connections, nn.Module):
    """Batched HTM temporal memory. ``compute(active_columns [streams, num_columns] bool)`` → raw
    anomaly [streams]. State (synapses, segments, sequence state) is in ``state_dict()``.

    Cells are numbered globally, ``stream * num_cells + column * cells_per_column + k``; synapse rows
    hold global presynaptic ids, padded with the sentinel ``streams * num_cells`` (a cell that is never
    active), so activity is one gather.
    """

    #: candidate search looks at touched segments only when entries × this < pool size, else scans
    _sparse_ratio = 4

    def __init__(self, num_columns: int, cells_per_column: int = 32, activation_threshold: int = 13,
                 initial_permanence: float = 0.21, connected_permanence: float = 0.5, min_threshold: int = 10,
                 max_new_synapse_count: int = 20, permanence_increment: float = 0.1,
                 permanence_decrement: float = 0.1, predicted_segment_decrement: float = 0.0,
                 max_segments_per_cell: int = 255, max_synapses_per_segment: int = 255, seed: int = 42,
                 streams: int = 1, device: str | torch.device | None = None, backend: str = "auto",
                 rules: str = "htm.core") -> None:
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if rules not in RULES:
            raise ValueError(f"rules must be one of {', '.join(RULES)}, got {rules!r}")
        for name, value in (("num_columns", num_columns), ("cells_per_column", cells_per_column),
                            ("max_segments_per_cell", max_segments_per_cell),
                            ("max_synapses_per_segment", max_synapses_per_segment), ("streams", streams)):
            if int(value) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {value}")
        for name, value in (("initial_permanence", initial_permanence),
                            ("connected_permanence", connected_permanence),
                            ("permanence_increment", permanence_increment),
                            ("permanence_decrement", permanence_decrement),
                            ("predicted_segment_decrement", predicted_segment_decrement)):
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        for name, value in (("activation_threshold", activation_threshold), ("min_threshold", min_threshold),
                            ("max_new_synapse_count", max_new_synapse_count)):
            if int(value) < 0:
                raise ValueError(f"{name} must be ≥ 0, got {value}")
        if min_threshold > activation_threshold:
            raise ValueError(f"min_threshold ({min_threshold}) must be ≤ activation_threshold "
                             f"({activation_threshold})")
        if cells_per_column >= 4096:
            raise ValueError(f"cells_per_column must be < 4096, got {cells_per_column}")
        if int(streams) * int(num_columns) * int(cells_per_column) >= 2 ** 31 - 1:
            raise ValueError("streams × num_columns × cells_per_column must be < 2**31")
        self.num_columns = C = int(num_columns)
        self.cells_per_column = K = int(cells_per_column)
        self.num_cells = N = C * K
        self.streams = S = int(streams)
        self.activation_threshold = int(activation_threshold)
        self.min_threshold = int(min_threshold)
        self.max_new_synapse_count = int(max_new_synapse_count)
        self.max_segments_per_cell = int(max_segments_per_cell)
        self.max_synapses_per_segment = int(max_synapses_per_segment)
        self.initial_permanence = _f32(initial_permanence)
        self.connected_permanence = _f32(connected_permanence)
        self.permanence_increment = _f32(permanence_increment)
        self.permanence_decrement = _f32(permanence_decrement)
        self.predicted_segment_decrement = _f32(predicted_segment_decrement)
        self.seed = int(seed)
        self.rules = rules
        self._nupic = rules == "nupic"
        # htm.core: connectedThreshold_ = connectedPermanence - Epsilon, computed in float32
        self._connected = float(np.float32(connected_permanence) - np.float32(EPSILON))
        self._eps = _f32(EPSILON)
        self._pad = S * N  # sentinel presynaptic cell: never active
        self._cand_floor = max(1, self.min_threshold)  # index counts below this cannot match
        dev = torch.device(device) if device is not None else torch.device("cpu")
        cap = 16
        width = max(4, min(self.max_synapses_per_segment, -(-max(self.max_new_synapse_count, 1) // 4) * 4))
        self._initial_width = width
        # persistent state -------------------------------------------------------------------
        self._init_storage(cap, width, dev)
        self.register_buffer("prev_active", torch.zeros(S * N + 1, dtype=torch.bool, device=dev))
        self.register_buffer("prev_winner", torch.zeros(S * N + 1, dtype=torch.bool, device=dev))
        self.register_buffer("counters", torch.zeros(2, dtype=_I64, device=dev))  # step, iteration
        self.register_buffer("_stream_seed", torch.arange(S, dtype=_I64, device=dev) + self.seed,
                             persistent=False)
        # derived state (rebuilt after loading or moving) -------------------------------------
        self._step = 0
        self._iteration = 0
        self._clear_sequence_state()
        self.register_load_state_dict_post_hook(TemporalMemory._after_load)
        self.backend = backend
        self._native = None  # NativeTM when the C kernel runs this memory
        self._native_dirty = False  # synapses changed since the buffers were last written
        if backend == "native" and not self._native_possible(dev):
            raise ValueError("backend 'native' needs a CPU device, a C compiler (gcc/cc), COGSIM_HTM_NATIVE unset "
                             "or 1, and max_synapses_per_segment ≤ 65535")
        if backend != "torch" and self._native_possible(dev):
            self._start_native()

    # ---- native backend ------------------------------------------------------------------------
    def _native_possible(self, dev: torch.device) -> bool:
        from cogsim.htm import native_tm

        return (dev.type == "cpu" and self.max_synapses_per_segment <= 0xFFFF and self.streams * self.num_cells < 2 ** 31
                and native_tm.library() is not None)

    def _start_native(self) -> None:
        """Hand the state over to the C kernel (from the buffers)."""
        from cogsim.htm.native_tm import NativeTM

        native = NativeTM(self)
        native.load(self._buffers, self.prev_active, self.prev_winner)
        self._native, self._native_dirty = native, False
        self._index = None  # the torch path's derived structures are rebuilt if it takes over again
        self._cell_segs = None
        self._clear_sequence_state()

    def _sync(self) -> None:
        """Write the native state into the buffers (torch layout) if it changed since the last time."""
        if self._native is not None and self._native_dirty:
            self._native_dirty = False
            for name, t in self._native.export(self._initial_width, self._pad).items():
                self._buffers[name] = t

    def __getattr__(self, name: str):
        if name in _NATIVE_EXPORTED and self.__dict__.get("_native_dirty"):
            self._sync()
        return super().__getattr__(name)

    @property
    def uses_native(self) -> bool:
        """Whether the C kernel runs this memory (else the torch path)."""
        return self._native is not None

    # ---- public views ----------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.prev_active.device

    @property
    def active_cells(self) -> torch.Tensor:
        return self.prev_active[:-1].view(self.streams, self.num_cells)

    @property
    def winner_cells(self) -> torch.Tensor:
        return self.prev_winner[:-1].view(self.streams, self.num_cells)

    @property
    def predictive_cells(self) -> torch.Tensor:
        """Cells with an active segment, i.e. predicted for the next ``compute``."""
        if self._native is not None:
            return self._native.predictive_cells()
        pred = torch.zeros(self.streams * self.num_cells, dtype=torch.bool, device=self.device)
        pred[self._act_cell] = True
        return pred.view(self.streams, self.num_cells)

    def predicted_columns(self) -> torch.Tensor:
        """Columns with a predictive cell [streams, num_columns]: the prediction for the next step."""
        if self._native is not None:
            return self._native.predicted_columns()
        cols = torch.zeros(self.streams * self.num_columns, dtype=torch.bool, device=self.device)
        cols[self._act_col] = True
        return cols.view(self.streams, self.num_columns)

    def num_segments(self) -> torch.Tensor:
        """Live segments per stream [streams]."""
        if self._native is not None:
            return self._native.stats()["segments"]
        return (self.seg_cell.view(self.streams, -1) >= 0).sum(1)

    def num_synapses(self) -> torch.Tensor:
        """Live synapses per stream [streams]."""
        if self._native is not None:
            return self._native.stats()["synapses"]
        return self.seg_nsyn.view(self.streams, -1).sum(1)

    def memory_bytes(self) -> int:
        if self._native is not None:
            return self._native.stats()["bytes"] + 2 * self.prev_active.numel()
        n = sum(b.numel() * b.element_size() for b in self.buffers())
        return n + (self._index.nbytes() if self._index is not None else 0)

    def reset(self) -> None:
        """Forget the sequence context (active/winner cells, predictions); synapses are kept."""
        if self._native is not None:
            self._native.reset(self.prev_active, self.prev_winner)
        self.prev_active.zero_()
        self.prev_winner.zero_()
        self._clear_sequence_state()

    # ---- the step ----------------------------------------------------------------------------
    @torch.no_grad()
    def compute(self, active_columns: torch.Tensor, learn: bool = True) -> torch.Tensor:
        """Advance every stream by one step; returns the raw anomaly [streams] (float32)."""
        S, C, K = self.streams, self.num_columns, self.cells_per_column
        if tuple(active_columns.shape) != (S, C):
            raise ValueError(f"active_columns must have shape [{S}, {C}], got {list(active_columns.shape)}")
        if self._native is not None:  # per-step overhead matters here: plain dict access, no Module hooks
            cols = active_columns.to(device="cpu", dtype=torch.bool).contiguous()
            d, b = self.__dict__, self._buffers
            if learn:
                d["_iteration"] += 1
                d["_native_dirty"] = True
            anomaly = self._native.compute(cols, learn, d["_step"], d["_iteration"], b["prev_active"], b["prev_winner"])
            d["_step"] += 1
            return anomaly
        if self._index is None:
            self._rebuild_index()
        dev = self.device
        cols = active_columns.to(device=dev, dtype=torch.bool).reshape(-1)
        act_col, act_cell = self._act_col, self._act_cell
        pred_col = torch.zeros(S * C, dtype=torch.bool, device=dev).index_fill_(0, act_col, True)
        burst = cols & ~pred_col
        n_act = cols.view(S, C).sum(1)
        anomaly = burst.view(S, C).sum(1).float() / n_act.clamp(min=1).float()
        if learn:
            self._iteration += 1
            if act_cell.numel():
                self.seg_last.index_fill_(0, self._cand.index_select(0, self._a_idx), self._iteration)
        # predicted active columns: their predicted cells fire and win; their active segments learn
        in_active = cols.index_select(0, act_col)
        learn_pos = self._a_idx[in_active]
        pred_cells = torch.unique(act_cell[in_active])
        burst_cols = burst.nonzero().squeeze(1)  # global column ids s*C + c
        new_cells = burst_cols
        if burst_cols.numel():
            best_pos, best_cells, match_cols = self._best_matching(burst)
            has_match = torch.zeros(S * C, dtype=torch.bool, device=dev).index_fill_(0, match_cols, True)
            new_cells = self._new_winners(burst_cols[~has_match.index_select(0, burst_cols)])
            learn_pos = torch.cat([learn_pos, best_pos])
            burst_cells = (burst_cols[:, None] * K + torch.arange(K, device=dev)).view(-1)
            active_idx = torch.cat([pred_cells, burst_cells])
            winner_idx = torch.sort(torch.cat([pred_cells, best_cells, new_cells])).values
        else:
            active_idx = winner_idx = pred_cells
        if learn:
            self._learn(learn_pos, cols, new_cells)
        self.prev_active.index_fill_(0, self._active_idx, False).index_fill_(0, active_idx, True)
        self.prev_winner.index_fill_(0, self._winner_idx, False).index_fill_(0, winner_idx, True)
        self._active_idx, self._winner_idx = active_idx, winner_idx
        self._step += 1
        self._dendrites()
        return anomaly

    # ---- column decisions --------------------------------------------------------------------
    def _best_matching(self, burst: torch.Tensor):
        """Best matching segment of every bursting column that has one: (candidate positions, their
        cells, columns of all matching segments in bursting columns)."""
        K = self.cells_per_column
        pos = self._m_idx
        cells = self._cand_cell.index_select(0, pos)
        mcol = cells // K
        sel = burst.index_select(0, mcol)
        pos, cells, mcol = pos[sel], cells[sel], mcol[sel]
        if pos.numel() == 0:
            return pos, cells, mcol
        pot = self._cand_pot.index_select(0, pos)
        uid = self.seg_uid.index_select(0, self._cand.index_select(0, pos))
        key = (pot << 52) | ((K - 1 - cells % K) << 40) | ((1 << 40) - 1 - uid)
        best = torch.full((burst.numel(),), -1, dtype=_I64, device=self.device)
        best.scatter_reduce_(0, mcol, key, reduce="amax")
        win = key == best.index_select(0, mcol)
        return pos[win], cells[win], mcol

    def _new_winners(self, gcols: torch.Tensor) -> torch.Tensor:
        """Winner of each bursting column without a matching segment (global column ids): the
        column's previous winner cell (the lowest if several; htm.core since 2023), else the least
        used cell (fewest segments; ties: the lowest index, or a counter-based random draw under
        NuPIC's rules, which also skip the reuse)."""
        if gcols.numel() == 0:
            return gcols
        K, C, N = self.cells_per_column, self.num_columns, self.num_cells
        k = torch.arange(K, device=self.device)
        cells = gcols[:, None] * K + k
        nseg = self.cell_nseg[cells].long()
        if self._nupic:
            stream = gcols // C
            tie = hash_fold(self._stream_keys(SALT_LEAST_USED)[stream][:, None], cells - (stream * N)[:, None])
            return cells.gather(1, ((nseg << 32) | tie).argmin(1, keepdim=True)).squeeze(1)
        least = cells.gather(1, (nseg * K + k).argmin(1, keepdim=True)).squeeze(1)
        was_winner = self.prev_winner.index_select(0, cells.view(-1)).view(cells.shape)
        first = torch.where(was_winner, k, K).min(1).values
        return torch.where(first < K, gcols * K + first, least)

    def _stream_keys(self, salt: int) -> torch.Tensor:
        """Per-stream hash prefix of this step's draws for one purpose: hash32(salt, step, seed_s)."""
        return hash_fold(hash32(salt, self._step), self._stream_seed)

    # ---- learning ----------------------------------------------------------------------------
    def _learn(self, learn_pos, cols, new_cells) -> None:
        """Adapt learning and punished segments, grow synapses, grow new segments."""
        N = self.num_cells
        new_rows = n_exact = learn_pos.new_empty(0)
        if new_cells.numel():  # first: creating may enlarge the pool (slot numbers change)
            win_count = torch.bincount(self._winner_idx // N, minlength=self.streams)
            n_exact = win_count[new_cells // N].clamp(max=self.max_new_synapse_count)
            ok = n_exact > 0
            n_exact = n_exact[ok]
            if n_exact.numel():
                new_rows = self._create_segments(new_cells[ok])
        adapt_pos, n_learn = learn_pos, learn_pos.numel()
        if self.predicted_segment_decrement > 0 and self._m_idx.numel():
            mcol = self._cand_cell.index_select(0, self._m_idx) // self.cells_per_column
            punish = self._m_idx[~cols.index_select(0, mcol)]
            adapt_pos = torch.cat([learn_pos, punish])
        alive = self._adapt(adapt_pos, n_learn) if adapt_pos.numel() else None
        grow_n = self.max_new_synapse_count - self._cand_pot.index_select(0, learn_pos)
        grow = grow_n > 0 if alive is None else (grow_n > 0) & alive
        grow_pos = learn_pos[grow]
        if grow_pos.numel() == 0 and new_rows.numel() == 0:
            return
        table = self._winner_table()
        if grow_pos.numel():
            self._grow(self._cand.index_select(0, grow_pos), grow_n[grow], table)
        if new_rows.numel():
            self._grow_fresh(new_rows, n_exact, table)

    def _winner_table(self):
        """Previous winners per stream: (sorted global ids, count [S], start [S], table [S, wmax]
        of global ids in sorted order padded with the sentinel)."""
        S, N = self.streams, self.num_cells
        widx = self._winner_idx
        ws = widx // N
        wcount = torch.bincount(ws, minlength=S)
        wstart = torch.cumsum(wcount, 0) - wcount
        wmax = max(1, int(wcount.max())) if widx.numel() else 1
        wtab = torch.full((S * wmax,), self._pad, dtype=_I64, device=self.device)
        wtab[ws * wmax + torch.arange(widx.numel(), device=self.device) - wstart[ws]] = widx
        return widx, wcount, wstart, wtab.view(S, wmax)

    def _grow_keys(self, rows, stream, cand, n_desired, n_cand):
        """Visiting-order keys of the candidates [R, wmax]: counter-based random draws where htm.core
        shuffles (not all can be taken), else the sorted position; padding last."""
        shuffle = n_desired < n_cand
        prefix = hash_fold(self._stream_keys(SALT_GROW)[stream], self.seg_uid.index_select(0, rows))
        position = torch.arange(cand.shape[1], device=self.device)
        rnd = hash_fold(prefix[:, None], cand - (stream * self.num_cells)[:, None])
        key = torch.where(shuffle[:, None], (rnd << 16) | position, position)  # ties: sorted order
        return key.masked_fill_(cand == self._pad, 1 << 50)

    def _visit_order(self, rows, stream, cand, n_desired, n_cand):
        """Permutation [R, wmax] putting the candidates in htm.core's visiting order (None: keep)."""
        if not bool((n_desired < n_cand).any()):
            return None
        return self._grow_keys(rows, stream, cand, n_desired, n_cand).argsort(1)

    def _grow_fresh(self, rows, n_desired, table) -> None:
        """growSynapses on new (empty) segments: the first n candidates in visiting order."""
        widx, wcount, wstart, wtab = table
        W, pad = self.syn_pre.shape[1], self._pad
        stream = rows // self.capacity
        n_cand = wcount[stream]
        n_act = torch.minimum(torch.minimum(n_desired, n_cand), torch.full_like(n_cand, self.max_synapses_per_segment))
        cand = wtab.index_select(0, stream)
        if bool((n_desired < n_cand).any()):  # a random subset: the n_act smallest keys, any order
            keys = self._grow_keys(rows, stream, cand, n_desired, n_cand)
            k = int(n_act.max())
            cand = cand.gather(1, torch.topk(keys, k, dim=1, largest=False, sorted=False).indices)
            cand = cand.masked_fill(torch.arange(k, device=self.device) >= n_act[:, None], pad)
            cand = torch.sort(cand, dim=1).values  # taken first, padding last
        if cand.shape[1] >= W:
            cand = cand[:, :W]
        else:
            cand = torch.cat([cand, cand.new_full((cand.shape[0], W - cand.shape[1]), pad)], 1)
        take = torch.arange(W, device=self.device) < n_act[:, None]
        self.syn_pre.index_copy_(0, rows, torch.where(take, cand, pad).to(torch.int32))
        self.syn_perm.index_copy_(0, rows, torch.where(take, self.initial_permanence, 0.0))
        self.seg_nsyn.index_copy_(0, rows, n_act.to(torch.int32))
        self._index_append(cand[take], rows[:, None].expand_as(take)[take])

    def _adapt(self, pos, n_learn: int) -> torch.Tensor | None:
        """htm.core adaptSegment (with pruning) on candidate positions; the first ``n_learn`` learn
        (+inc/−dec), the rest are punished (−predicted_segment_decrement on active synapses).
        Returns which of the first ``n_learn`` survive (None: all)."""
        act = self._cand_act.index_select(0, pos)
        perm = self._cand_perm.index_select(0, pos)
        if pos.numel() == n_learn:
            newp = perm + torch.where(act, self.permanence_increment, -self.permanence_decrement)
        else:
            punished = torch.arange(pos.numel(), device=self.device) >= n_learn
            inc = torch.where(punished, -self.predicted_segment_decrement, self.permanence_increment)
            dec = torch.where(punished, 0.0, self.permanence_decrement)
            newp = perm + torch.where(act, inc[:, None], -dec[:, None])
        rows = self._cand.index_select(0, pos)
        pre = self._cand_pre.index_select(0, pos)
        kill = (newp < self._eps) & (pre != self._pad)
        any_kill = bool(kill.any())
        newp.clamp_(0.0, 1.0)
        if any_kill:
            newp.masked_fill_(kill, 0.0)
        self.syn_perm.index_copy_(0, rows, newp)
        if not any_kill:
            return None
        pre.masked_fill_(kill, self._pad)
        self.syn_pre.index_copy_(0, rows, pre)
        nsyn = (pre != self._pad).sum(1)
        self.seg_nsyn.index_copy_(0, rows, nsyn.to(torch.int32))
        dead = nsyn < self.min_threshold
        if bool(dead.any()):
            self._destroy_segments(rows[dead])
        return ~dead[:n_learn]

    def _evict(self, cells) -> torch.Tensor:
        """Destroy one segment of each given (full) cell; returns the freed slots. htm.core
        (``pruneSegment_``): the segment with the smallest sum of squared permanences; NuPIC: the
        least recently used. Ties: the oldest."""
        lists = self._cell_segs.index_select(0, cells).long()
        valid = lists >= 0
        safe = lists.clamp(min=0)
        uid = self.seg_uid[safe]
        if self._nupic:
            key = (self.seg_last[safe] << 32) | uid
        else:
            strength = self._strength(safe.view(-1)).view(safe.shape).masked_fill_(~valid, float("inf"))
            weakest = strength == strength.min(1, keepdim=True).values
            key = torch.where(weakest, uid, torch.iinfo(_I64).max)
        key.masked_fill_(~valid, torch.iinfo(_I64).max)
        slots = lists.gather(1, key.argmin(1, keepdim=True)).squeeze(1)
        self._destroy_segments(slots)
        return slots

    def _strength(self, rows) -> torch.Tensor:
        """Sum of squared permanences of each row, in float64, smallest terms first: the squares are
        exact and the order fixed, so the C kernel (synapses stored elsewhere) gets the same sums."""
        perm = self.syn_perm.index_select(0, rows).double()
        perm.masked_fill_(self.syn_pre.index_select(0, rows) == self._pad, 0.0)
        squares = torch.sort(perm * perm, dim=1).values
        total = torch.zeros(rows.numel(), dtype=torch.float64, device=self.device)
        for j in range(squares.shape[1]):  # one term at a time: a reduction would reorder the sum
            total += squares[:, j]
        return total

    def _grow(self, rows, n_desired, table) -> None:
        """htm.core growSynapses onto the previous winner cells, for every (existing) row at once."""
        W = self.syn_pre.shape[1]
        dev, pad = self.device, self._pad
        widx, wcount, wstart, wtab = table
        if widx.numel() == 0:
            return
        wmax = wtab.shape[1]
        stream = rows // self.capacity
        cand = wtab.index_select(0, stream)  # [R, wmax], candidates in sorted order
        n_cand = wcount[stream]
        n_act = torch.minimum(n_desired, n_cand)
        # existing synapses onto candidates (htm.core does not duplicate them; it raises them)
        pre = self.syn_pre.index_select(0, rows)
        pl = pre.long()
        at = torch.searchsorted(widx, pl).clamp(max=widx.numel() - 1)
        crank = torch.where(widx[at] == pl, at - wstart[stream][:, None], wmax)
        dup_slot = torch.full((rows.numel(), wmax + 1), -1, dtype=_I64, device=dev)
        dup_slot.scatter_(1, crank, torch.arange(W, device=dev).expand(rows.numel(), W))
        dup_slot = dup_slot[:, :wmax]
        nsyn = (pre != pad).sum(1)
        overrun = nsyn + n_act - self.max_synapses_per_segment
        if bool((overrun > 0).any()):
            pre, nsyn = self._make_room(rows, pre, crank < wmax, overrun.clamp(min=0))
            n_act = torch.minimum(n_act, self.max_synapses_per_segment - nsyn)
        # visiting order: htm.core shuffles the candidates only when it cannot take them all
        order = self._visit_order(rows, stream, cand, n_desired, n_cand)
        if order is not None:
            cand = cand.gather(1, order)
            dup_slot = dup_slot.gather(1, order)
        dup = dup_slot >= 0
        fresh = ~dup & (cand != pad)
        before = torch.cumsum(fresh, 1) - fresh.long()
        visited = before < n_act[:, None]
        create = visited & fresh
        raise_ = visited & dup
        if bool(raise_.any()):
            flat = (rows[:, None] * W + dup_slot)[raise_]
            perm = self.syn_perm.view(-1)
            perm[flat] = perm[flat].clamp(min=self.initial_permanence)
        k = create.sum(1)
        need = int((nsyn + k).max())
        if need > W:
            self._grow_width(need)
            W = self.syn_pre.shape[1]
            pre = self.syn_pre.index_select(0, rows)
        free = pre == pad
        frank = torch.where(free, torch.cumsum(free, 1) - 1, W)
        slot_of = torch.full((rows.numel(), W + 1), W, dtype=_I64, device=dev)
        slot_of.scatter_(1, frank, torch.arange(W, device=dev).expand(rows.numel(), W))
        q = (torch.cumsum(create, 1) - 1).clamp(min=0)
        flat = (rows[:, None] * W + slot_of.gather(1, q))[create]
        new_pre = cand[create]
        self.syn_pre.view(-1)[flat] = new_pre.to(torch.int32)
        self.syn_perm.view(-1)[flat] = self.initial_permanence
        self.seg_nsyn.index_add_(0, rows, k.to(torch.int32))
        self._index_append(new_pre, rows[:, None].expand_as(create)[create])

    def _make_room(self, rows, pre, is_cand, overrun):
        """destroyMinPermanenceSynapses: drop the ``overrun`` weakest synapses not onto candidates."""
        perm = self.syn_perm.index_select(0, rows)
        W = pre.shape[1]
        eligible = (pre != self._pad) & ~is_cand
        # weakest first; equal permanences: lower presynaptic cell first
        by_pre = torch.sort(pre, dim=1, stable=True).indices
        key = torch.where(eligible, perm, torch.full_like(perm, 3.0)).gather(1, by_pre)
        order = by_pre.gather(1, torch.sort(key, dim=1, stable=True).indices)
        rank = torch.empty_like(order)
        rank.scatter_(1, order, torch.arange(W, device=self.device).expand_as(order))
        kill = eligible & (rank < overrun[:, None])
        pre = pre.masked_fill(kill, self._pad)
        self.syn_pre.index_copy_(0, rows, pre)
        self.syn_perm.index_copy_(0, rows, perm.masked_fill(kill, 0.0))
        nsyn = (pre != self._pad).sum(1)
        self.seg_nsyn.index_copy_(0, rows, nsyn.to(torch.int32))
        return pre, nsyn

    # ---- predictions for the next step ---------------------------------------------------------
    def _dendrites(self) -> None:
        """Active and matching segments from the current active cells (htm.core activateDendrites).

        The index proposes candidates (segments with ≥ min_threshold index hits); candidates are then
        counted exactly from their synapse rows, which also serves learning at the next step."""
        hist = self._hist
        P = self.seg_cell.numel()  # hist[P] is the padding slot; hist is longer, a multiple of _SCAN
        entries = self._index.lookup(self._active_idx)
        n = entries.numel()
        if n:
            if self._ones.numel() < n:
                self._ones = torch.ones(n * 3 // 2, dtype=hist.dtype, device=self.device)
                self._minus_ones = self._ones * -1 if hist.dtype != torch.uint8 else self._ones * 255
            hist.index_add_(0, entries, self._ones[:n])
            if n * self._sparse_ratio < P:  # few entries: look only at the touched segments
                hits = entries[hist.index_select(0, entries) >= self._cand_floor].long()
                hist.index_add_(0, entries, self._minus_ones[:n])  # back to zero (wrapping add)
                # one copy of each: the last writer of every slot keeps its entry
                owner = self._owner
                order = torch.arange(hits.numel(), dtype=_I64, device=self.device)
                owner.index_copy_(0, hits, order)
                cand = hits[owner.index_select(0, hits) == order]
            else:  # scan: maxima of 256-slot chunks first (fast), then the few chunks that pass
                chunks = hist.view(-1, _SCAN)
                hot = (chunks.amax(1) >= self._cand_floor).nonzero().squeeze(1)
                r, c = (chunks.index_select(0, hot) >= self._cand_floor).nonzero(as_tuple=True)
                cand = hot[r] * _SCAN + c
                hist.zero_()
            cand = cand[cand < P].long()  # the padding slot collects many hits
        else:
            cand = self._cand.new_empty(0)
        if self._risky.numel():
            cand = torch.unique(torch.cat([cand, self._risky]))
        pre = self.syn_pre.index_select(0, cand)
        act = self.prev_active.index_select(0, pre.view(-1)).view(pre.shape)
        perm = self.syn_perm.index_select(0, cand)
        pot = act.sum(1)
        if self.min_threshold < 1:  # stale index entries: keep only segments with an active synapse
            keep = pot >= 1
            cand, pre, act, perm, pot = cand[keep], pre[keep], act[keep], perm[keep], pot[keep]
        conn = (act & (perm >= self._connected)).sum(1)
        self._cand, self._cand_pre, self._cand_act, self._cand_perm, self._cand_pot = cand, pre, act, perm, pot
        self._cand_cell = self.seg_cell.index_select(0, cand).long()
        self._a_idx = (conn >= self.activation_threshold).nonzero().squeeze(1)
        self._m_idx = (pot >= self.min_threshold).nonzero().squeeze(1)
        self._act_cell = self._cand_cell.index_select(0, self._a_idx)
        self._act_col = self._act_cell // self.cells_per_column

    def _clear_sequence_state(self) -> None:
        dev = self.prev_active.device
        e = torch.empty(0, dtype=_I64, device=dev)
        self._active_idx = self.prev_active.nonzero().squeeze(1)
        self._winner_idx = self.prev_winner.nonzero().squeeze(1)
        self._cand = self._cand_pot = self._cand_cell = self._a_idx = self._m_idx = e
        self._act_cell = self._act_col = e
        W = self.syn_pre.shape[1]
        self._cand_pre = torch.empty((0, W), dtype=torch.int32, device=dev)
        self._cand_act = torch.empty((0, W), dtype=torch.bool, device=dev)
        self._cand_perm = torch.empty((0, W), dtype=torch.float32, device=dev)

    # ---- checkpoints -------------------------------------------------------------------------
    def merge_streams(self, states: list[dict[str, torch.Tensor]], owners: list[int]) -> dict[str, torch.Tensor]:
        """One state dict whose stream ``s`` is stream ``s`` of ``states[owners[s]]`` (state dicts
        of memories of this shape, e.g. from processes that each fed some of the streams). Streams
        are independent, so the result is the memory that fed every stream its own inputs."""
        S, N = self.streams, self.num_cells
        if len(owners) != S:
            raise ValueError(f"merge_streams: {len(owners)} owners for {S} streams")
        cap = max(st["seg_cell"].numel() // S for st in states)
        width = max(st["syn_pre"].shape[1] for st in states)
        fills = {"syn_pre": self._pad, "syn_perm": 0.0, "seg_cell": -1, "seg_uid": 0, "seg_last": 0, "seg_nsyn": 0}
        out = dict(states[0])
        picks = [[s for s in range(S) if owners[s] == r] for r in range(len(states))]
        for name, fill in fills.items():
            ref = states[0][name]
            merged = torch.full((S, cap) + ((width,) if ref.dim() == 2 else ()), fill, dtype=ref.dtype)
            for st, mine in zip(states, picks):
                src = st[name].view((S, -1) + tuple(st[name].shape[1:]))
                if ref.dim() == 2:
                    merged[mine, : src.shape[1], : src.shape[2]] = src[mine]
                else:
                    merged[mine, : src.shape[1]] = src[mine]
            out[name] = merged.view((S * cap,) + tuple(merged.shape[2:]))
        for name, per in (("seg_top", 1), ("next_uid", 1), ("cell_nseg", N), ("prev_active", N), ("prev_winner", N)):
            merged = states[0][name].clone()
            body = merged[: S * per].view(S, per)
            for st, mine in zip(states, picks):
                body[mine] = st[name][: S * per].view(S, per)[mine]
            out[name] = merged
        return out

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        self._sync()
        self.counters.copy_(torch.tensor([self._step, self._iteration], dtype=_I64))
        super()._save_to_state_dict(destination, prefix, keep_vars)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        self._adopt_saved_shapes(state_dict, prefix, error_msgs)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    @staticmethod
    def _after_load(module: "TemporalMemory", incompatible) -> None:
        module._step, module._iteration = (int(v) for v in module.counters.tolist())
        if module._native is not None:
            module._start_native()
            return
        module._cell_segs = None
        module._clear_sequence_state()
        module._rebuild_index()
        module._dendrites()

    def _apply(self, fn, recurse=True):
        # follow device moves only: permanences and counters keep their dtypes under .half() etc.
        dev = fn(torch.zeros((), device=self.device)).device
        if dev != self.device:
            self._sync()
            native = self._native is not None
            self._native = None
            for name, buf in self._buffers.items():
                if buf is not None:
                    self._buffers[name] = buf.to(dev)
            if self.backend != "torch" and self._native_possible(dev):
                self._start_native()
            elif native or self._index is not None:  # the torch path takes over (or follows the move)
                self._clear_sequence_state()
                self._cell_segs = None
                self._rebuild_index()
                self._dendrites()
        return self

    # ---- pickling (copy.deepcopy, torch.save of the module) ----------------------------------------
    def __getstate__(self):
        self._sync()
        state = self.__dict__.copy()
        state["_native_restart"] = state.pop("_native") is not None
        state["_native"] = None
        return state

    def __setstate__(self, state):
        restart = state.pop("_native_restart", False)
        super().__setstate__(state)
        if restart:
            self._start_native()
