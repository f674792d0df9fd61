"""NuPIC's backtracking temporal memory (the TM behind NuPIC's NAB score), batched over streams.

Unlike the plain temporal memory (:mod:`cogsim.htm.temporal_memory`), when too much of the input is
unpredicted it replays the last few inputs from "start cells" to find a past step from which the
present is predicted, and it learns one cell per column along such paths, queueing segment updates
that apply only when the predicted column does turn on. The raw anomaly is NuPIC's: the fraction of
active columns that no segment was "confident" about (a segment with ``activation_threshold``
synapses of any permanence onto the previous active cells). The rules are in docs/design.md
("Backtracking temporal memory"). The step runs in the C kernel ``native_btm.c``; without a C
compiler the Python reference (:mod:`cogsim.htm.backtracking_reference`) runs instead, with the same
results.
"""
from __future__ import annotations

import ctypes

import numpy as np
import torch

from cogsim.native import NativeLibrary, max_threads

ABI = 1


class _Params(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int32) for n in (
        "columns", "cells_per_column", "activation_threshold", "min_threshold", "new_synapse_count",
        "max_segments_per_cell", "max_synapses_per_segment", "pam_length", "max_inf_backtrack",
        "max_lrn_backtrack", "max_seq_length", "streams")] + [
        (n, ctypes.c_float) for n in ("initial_permanence", "connected_permanence", "permanence_increment",
                                      "permanence_decrement", "permanence_max")] + [("seed", ctypes.c_int64)]


_P, _I32 = ctypes.c_void_p, ctypes.c_int32


def _declare(lib: ctypes.CDLL) -> None:
    if lib.cogsim_btm_abi() != ABI:
        raise RuntimeError("stale kernel library")
    sigs = {
        "cogsim_btm_new": ([ctypes.POINTER(_Params)], _P),
        "cogsim_btm_free": ([_P], None),
        "cogsim_btm_compute": ([_P, _P, _I32, _P, _I32], None),
        "cogsim_btm_run": ([_P, _P, _P, _P, _P, _P, _I32, _I32, _P, _I32], None),
        "cogsim_btm_seed": ([_P, _I32, ctypes.c_int64], None),
        "cogsim_btm_reset": ([_P], None),
        "cogsim_btm_state": ([_P, _I32, _I32, _P], None),
        "cogsim_btm_stats": ([_P, _P, _P], ctypes.c_int64),
        "cogsim_btm_segment": ([_P, _I32, _I32, _P, _P, _P], _I32),
    }
    for name, (args, res) in sigs.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = args, res


LIBRARY = NativeLibrary("htm_btm", __package__, "native_btm.c", "COGSIM_HTM_NATIVE", _declare, {"COGSIM_ABI": ABI})

#: states :meth:`BacktrackingTM.state` can return
STATES = ("active", "predicted", "learn_active", "learn_predicted", "confident_columns")


class BacktrackingTM:
    """``compute(active_columns [streams, columns] bool)`` → raw anomaly [streams] (float32), one
    step of every stream; ``run`` takes whole sequences instead. Parameters are NuPIC's
    (``BacktrackingTM``/``Cells4``) under cogsim's names; the defaults are those of NuPIC's NAB
    detector. Stream ``s`` draws its random numbers from ``seeds[s]`` (default ``seed + s``), so it
    equals a one-stream memory with that seed.

    ``backend``: ``"auto"`` (the C kernel when it can be built, else the reference), ``"native"`` or
    ``"reference"``. The state lives in the backend and is not saved with checkpoints.
    """

    def __init__(self, num_columns: int, cells_per_column: int = 32, activation_threshold: int = 13,
                 min_threshold: int = 10, initial_permanence: float = 0.21, connected_permanence: float = 0.5,
                 permanence_increment: float = 0.1, permanence_decrement: float = 0.1,
                 permanence_max: float = 1.0, new_synapse_count: int = 20, max_segments_per_cell: int = 128,
                 max_synapses_per_segment: int = 32, pam_length: int = 3, max_inf_backtrack: int = 10,
                 max_lrn_backtrack: int = 5, max_seq_length: int = 32, seed: int = 1960, streams: int = 1,
                 seeds=None, backend: str = "auto", threads: int | None = None) -> None:
        ints = {"num_columns": num_columns, "cells_per_column": cells_per_column, "streams": streams,
                "max_segments_per_cell": max_segments_per_cell, "max_synapses_per_segment": max_synapses_per_segment,
                "pam_length": pam_length}
        for name, value in ints.items():
            if int(value) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {value}")
        for name, value in (("activation_threshold", activation_threshold), ("min_threshold", min_threshold),
                            ("new_synapse_count", new_synapse_count), ("max_inf_backtrack", max_inf_backtrack),
                            ("max_lrn_backtrack", max_lrn_backtrack), ("max_seq_length", max_seq_length)):
            if int(value) < 0:
                raise ValueError(f"{name} must be ≥ 0, got {value}")
        for name, value in (("initial_permanence", initial_permanence), ("connected_permanence", connected_permanence),
                            ("permanence_increment", permanence_increment),
                            ("permanence_decrement", permanence_decrement), ("permanence_max", permanence_max)):
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if max_synapses_per_segment > 1024:
            raise ValueError(f"max_synapses_per_segment must be ≤ 1024, got {max_synapses_per_segment}")
        if new_synapse_count > max_synapses_per_segment:
            raise ValueError(f"new_synapse_count ({new_synapse_count}) must be ≤ max_synapses_per_segment "
                             f"({max_synapses_per_segment})")
        if cells_per_column > 4096:
            raise ValueError(f"cells_per_column must be ≤ 4096, got {cells_per_column}")
        if backend not in ("auto", "native", "reference"):
            raise ValueError(f"backend must be auto, native or reference, got {backend!r}")
        self.num_columns, self.cells_per_column, self.streams = int(num_columns), int(cells_per_column), int(streams)
        self.num_cells = self.num_columns * self.cells_per_column
        self.params = dict(
            columns=self.num_columns, cells_per_column=self.cells_per_column,
            activation_threshold=int(activation_threshold), min_threshold=int(min_threshold),
            new_synapse_count=int(new_synapse_count), max_segments_per_cell=int(max_segments_per_cell),
            max_synapses_per_segment=int(max_synapses_per_segment), pam_length=int(pam_length),
            max_inf_backtrack=int(max_inf_backtrack), max_lrn_backtrack=int(max_lrn_backtrack),
            max_seq_length=int(max_seq_length), streams=self.streams,
            initial_permanence=float(initial_permanence), connected_permanence=float(connected_permanence),
            permanence_increment=float(permanence_increment), permanence_decrement=float(permanence_decrement),
            permanence_max=float(permanence_max), seed=int(seed))
        self.threads = threads
        seeds = [int(seed) + s for s in range(self.streams)] if seeds is None else [int(x) for x in seeds]
        if len(seeds) != self.streams:
            raise ValueError(f"seeds: need one per stream ({self.streams}), got {len(seeds)}")
        lib = LIBRARY.get() if backend != "reference" else None
        if backend == "native" and lib is None:
            raise ValueError(f"backend 'native' is unavailable: {LIBRARY.status()}")
        self._lib, self._handle, self._ref = lib, None, None
        if lib is not None:
            self._handle = lib.cogsim_btm_new(ctypes.byref(_Params(**self.params)))
            if not self._handle:
                raise ValueError("backtracking TM: parameters rejected by the kernel")
            for s, x in enumerate(seeds):
                lib.cogsim_btm_seed(self._handle, s, x)
        else:
            from cogsim.htm.backtracking_reference import ReferenceBTM

            self._ref = [ReferenceBTM(self.params, seed=x) for x in seeds]

    def __del__(self) -> None:
        handle, self._handle = getattr(self, "_handle", None), None
        if handle:
            self._lib.cogsim_btm_free(handle)

    @property
    def uses_native(self) -> bool:
        return self._handle is not None

    def _threads(self) -> int:
        from cogsim.htm.native_tm import threads_for

        if self.threads is not None:
            return max(1, min(int(self.threads), self.streams))
        return threads_for(self.streams, self.streams * self.num_columns, 4096)

    def compute(self, active_columns, learn: bool = True) -> torch.Tensor:
        """Advance every stream one step; the raw anomaly of the input against the previous step's
        confident columns [streams] (float32)."""
        cols = torch.as_tensor(active_columns)
        if tuple(cols.shape) != (self.streams, self.num_columns):
            raise ValueError(f"active_columns must have shape [{self.streams}, {self.num_columns}], "
                             f"got {list(cols.shape)}")
        cols = cols.to(device="cpu", dtype=torch.bool).contiguous()
        if self._handle is not None:
            out = torch.empty(self.streams, dtype=torch.float32)
            self._lib.cogsim_btm_compute(self._handle, cols.data_ptr(), int(bool(learn)), out.data_ptr(), self._threads())
            return out
        x = cols.numpy()
        return torch.tensor([r.compute(np.flatnonzero(x[s]), learn) for s, r in enumerate(self._ref)],
                            dtype=torch.float32)

    def run(self, sequences, learn: bool = True) -> list[np.ndarray]:
        """Whole sequences, one per stream (``sequences[s]``: a list of active-column id arrays, one
        per step, or None to leave stream ``s`` alone), each stepped from where its stream stands;
        the streams run over threads, the longest first. Returns each stream's raw anomalies
        (float32 [steps]; empty for a stream left alone). Equal to calling ``compute`` step by step."""
        if len(sequences) != self.streams:
            raise ValueError(f"sequences: need one per stream ({self.streams}), got {len(sequences)}")
        rows = [[np.unique(np.asarray(r, dtype=np.int64)) for r in seq] if seq is not None else []
                for seq in sequences]
        for s, seq in enumerate(rows):
            for t, r in enumerate(seq):
                if r.size and (r[0] < 0 or r[-1] >= self.num_columns):
                    raise ValueError(f"sequences[{s}][{t}]: column ids must be in [0, {self.num_columns})")
        flat = [x for seq in rows for x in seq]
        row_ptr = np.zeros(len(flat) + 1, dtype=np.int64)
        np.cumsum([len(x) for x in flat], out=row_ptr[1:])
        ids = np.concatenate(flat).astype(np.int32) if flat else np.zeros(0, dtype=np.int32)
        nrows = np.array([len(seq) for seq in rows], dtype=np.int64)
        first = np.concatenate([[0], np.cumsum(nrows)[:-1]]).astype(np.int64)
        out = np.zeros(len(flat), dtype=np.float32)
        self.run_rows(ids, row_ptr, first, nrows, out, learn)
        return [out[a:a + n] for a, n in zip(first.tolist(), nrows.tolist())]

    def run_rows(self, ids: np.ndarray, row_ptr: np.ndarray, first_row: np.ndarray, nrows: np.ndarray,
                 out: np.ndarray, learn: bool = True) -> None:
        """``run`` on rows laid out flat: stream ``s`` steps through rows ``first_row[s]`` …
        ``first_row[s] + nrows[s] − 1``; row ``r``'s active columns are ``ids[row_ptr[r]:row_ptr[r+1]]``
        (int32, ascending, distinct, checked by the caller); anomalies go to ``out[r]`` (float32)."""
        nrows = np.ascontiguousarray(nrows, dtype=np.int64)
        first_row = np.ascontiguousarray(first_row, dtype=np.int64)
        if self._handle is None:
            for s, ref in enumerate(self._ref):
                for r in range(int(first_row[s]), int(first_row[s] + nrows[s])):
                    out[r] = ref.compute(ids[row_ptr[r]:row_ptr[r + 1]], learn)
            return
        for name, a, dtype in (("ids", ids, np.int32), ("row_ptr", row_ptr, np.int64), ("out", out, np.float32)):
            if a.dtype != dtype or not a.flags.c_contiguous:
                raise ValueError(f"{name} must be a contiguous {np.dtype(dtype).name} array")
        order = np.ascontiguousarray(np.argsort(-nrows, kind="stable")[: int((nrows > 0).sum())], dtype=np.int32)
        threads = max(1, min(self.threads or max_threads(), len(order)))
        self._lib.cogsim_btm_run(self._handle, ids.ctypes.data, row_ptr.ctypes.data, first_row.ctypes.data,
                                 nrows.ctypes.data, order.ctypes.data, len(order), int(bool(learn)), out.ctypes.data,
                                 threads)

    def reset(self) -> None:
        """End of a sequence: the next input starts on start cells, queued learning is dropped."""
        if self._handle is not None:
            self._lib.cogsim_btm_reset(self._handle)
        else:
            for r in self._ref:
                r.reset()

    def state(self, name: str, stream: int = 0) -> np.ndarray:
        """One stream's state as a bool array: ``active``, ``predicted``, ``learn_active``,
        ``learn_predicted`` (cells) or ``confident_columns`` (columns; the next step's prediction)."""
        if name not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}, got {name!r}")
        if not 0 <= stream < self.streams:
            raise ValueError(f"stream must be in [0, {self.streams}), got {stream}")
        size = self.num_columns if name == "confident_columns" else self.num_cells
        if self._handle is None:
            return self._ref[stream].state(name, size)
        out = np.zeros(size, dtype=np.uint8)
        self._lib.cogsim_btm_state(self._handle, stream, STATES.index(name), out.ctypes.data)
        return out.astype(bool)

    def segments(self, stream: int = 0) -> list[tuple[int, list[int], list[float]]]:
        """One stream's live segments as (cell, presynaptic cells, permanences), ordered by cell,
        then by presynaptic cells (for tests and inspection)."""
        if self._handle is None:
            return self._ref[stream].segment_list()
        width = self.params["max_synapses_per_segment"]
        src, perm = np.zeros(width, dtype=np.int32), np.zeros(width, dtype=np.float32)
        cell = ctypes.c_int32(0)
        out, g = [], 0
        while True:
            n = self._lib.cogsim_btm_segment(self._handle, stream, g, ctypes.byref(cell), src.ctypes.data,
                                             perm.ctypes.data)
            if n == -2:
                break
            if n >= 0:
                out.append((int(cell.value), src[:n].tolist(), perm[:n].tolist()))
            g += 1
        return sorted(out)

    def stats(self) -> dict:
        """Live segments and synapses per stream [streams] and the bytes held."""
        if self._handle is None:
            seg = [r.num_segments() for r in self._ref]
            syn = [r.num_synapses() for r in self._ref]
            return {"segments": np.array(seg), "synapses": np.array(syn), "bytes": 0}
        nseg, nsyn = np.zeros(self.streams, dtype=np.int64), np.zeros(self.streams, dtype=np.int64)
        nbytes = self._lib.cogsim_btm_stats(self._handle, nseg.ctypes.data, nsyn.ctypes.data)
        return {"segments": nseg, "synapses": nsyn, "bytes": int(nbytes)}
