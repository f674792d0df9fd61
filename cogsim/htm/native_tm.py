"""Native (C) CPU kernel of the temporal memory (``native_tm.c``): the torch path's algorithm, bit for
bit, one stream at a time in plain loops over compact per-stream structures, streams over threads.

Why: a torch step is 130–350 small ops whose per-op overhead dominates on a CPU. How it stays equal
to the torch path: docs/design.md §5.2.3. :meth:`NativeTM.export` writes the torch layout for
checkpoints, :meth:`NativeTM.load` reads any torch layout.
"""
from __future__ import annotations

import ctypes
import os

import torch

from cogsim.htm.counter_rng import SALT_GROW, SALT_LEAST_USED
from cogsim.native import EXACT_CFLAGS, NativeLibrary, kernel_threads, max_threads

ABI = 2


class _Params(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int32) for n in (
        "columns", "cells_per_column", "activation_threshold", "min_threshold", "max_new_synapse_count",
        "max_segments_per_cell", "max_synapses_per_segment", "streams", "nupic_rules")] + [
        (n, ctypes.c_float) for n in ("initial_permanence", "connected", "permanence_increment",
                                      "permanence_decrement", "predicted_segment_decrement", "epsilon")] + [
        ("seed", ctypes.c_int64), ("compact_floor", ctypes.c_int64)]


_P, _I32, _I64 = ctypes.c_void_p, ctypes.c_int32, ctypes.c_int64


def _declare(lib: ctypes.CDLL) -> None:
    if lib.cogsim_htm_tm_abi() != ABI:
        raise RuntimeError("stale kernel library")
    sigs = {
        "cogsim_htm_tm_new": ([ctypes.POINTER(_Params)], _P),
        "cogsim_htm_tm_free": ([_P], None),
        "cogsim_htm_tm_compute": ([_P, _P, _I32, _I64, _I64, _P, _P, _P, _I32], None),
        "cogsim_htm_tm_reset": ([_P, _P, _P], None),
        "cogsim_htm_tm_predicted": ([_P, _P, _P], None),
        "cogsim_htm_tm_stats": ([_P, _P, _P, _P, _P], _I64),
        "cogsim_htm_tm_export": ([_P, _I64, _I64] + [_P] * 9, None),
        "cogsim_htm_tm_load": ([_P, _I64, _I64] + [_P] * 8, _I64),
    }
    for name, (args, res) in sigs.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = args, res


LIBRARY = NativeLibrary("htm_tm", __package__, "native_tm.c", "COGSIM_HTM_NATIVE", _declare,
                        {"COGSIM_ABI": ABI, "SALT_LU": SALT_LEAST_USED, "SALT_GROW": SALT_GROW}, cflags=EXACT_CFLAGS)


def library() -> ctypes.CDLL | None:
    """The compiled kernel library (built on first use); ``None`` when unavailable or disabled."""
    return LIBRARY.get()


#: columns (streams × columns) worth a thread of their own in a TM step: a stream of 1024 columns
#: with 2% active steps in ~4 µs, of 2048 columns in ~35 µs, and a thread costs tens of µs to start
COLUMNS_PER_THREAD = 32768


def default_threads() -> int:
    """The most threads an HTM kernel uses: ``COGSIM_HTM_THREADS``, else the native kernels' limit
    (:func:`cogsim.native.max_threads`, which :func:`cogsim.threads.share_cores` sets)."""
    env = os.environ.get("COGSIM_HTM_THREADS")
    return max(1, int(env)) if env else max_threads()


def threads_for(streams: int, work: int, work_per_thread: int) -> int:
    """Threads for an HTM kernel call over ``streams`` streams: exactly ``COGSIM_HTM_THREADS`` when
    set (tests, benchmarks), else one per ``work_per_thread`` units of ``work``; never more than the
    streams, since a stream is never split."""
    env = os.environ.get("COGSIM_HTM_THREADS")
    n = max(1, int(env)) if env else kernel_threads(work, work_per_thread)
    return max(1, min(n, streams))


class NativeTM:
    """Owner of one C temporal-memory state (freed with the object)."""

    #: garbage (entries) an arena may hold before it is compacted (tests set 0 to compact often)
    compact_floor = 4096

    def __init__(self, tm) -> None:
        self.lib = library()
        assert self.lib is not None
        p = _Params(columns=tm.num_columns, cells_per_column=tm.cells_per_column,
                    activation_threshold=tm.activation_threshold, min_threshold=tm.min_threshold,
                    max_new_synapse_count=tm.max_new_synapse_count, max_segments_per_cell=tm.max_segments_per_cell,
                    max_synapses_per_segment=tm.max_synapses_per_segment, streams=tm.streams,
                    nupic_rules=int(tm.rules == "nupic"),
                    initial_permanence=tm.initial_permanence, connected=tm._connected,
                    permanence_increment=tm.permanence_increment, permanence_decrement=tm.permanence_decrement,
                    predicted_segment_decrement=tm.predicted_segment_decrement, epsilon=tm._eps,
                    seed=tm.seed, compact_floor=self.compact_floor)
        self.streams, self.num_columns, self.num_cells = tm.streams, tm.num_columns, tm.num_cells
        self.handle = self.lib.cogsim_htm_tm_new(ctypes.byref(p))

    def __del__(self) -> None:
        handle, self.handle = getattr(self, "handle", None), None
        if handle:
            self.lib.cogsim_htm_tm_free(handle)

    def compute(self, cols: torch.Tensor, learn: bool, step: int, iteration: int, prev_active: torch.Tensor,
                prev_winner: torch.Tensor) -> torch.Tensor:
        anomaly = torch.empty(self.streams, dtype=torch.float32)
        threads = 1 if self.streams == 1 else threads_for(self.streams, self.streams * self.num_columns,
                                                          COLUMNS_PER_THREAD)
        self.lib.cogsim_htm_tm_compute(self.handle, cols.data_ptr(), int(learn), step, iteration, anomaly.data_ptr(),
                                       prev_active.data_ptr(), prev_winner.data_ptr(), threads)
        return anomaly

    def reset(self, prev_active: torch.Tensor, prev_winner: torch.Tensor) -> None:
        self.lib.cogsim_htm_tm_reset(self.handle, prev_active.data_ptr(), prev_winner.data_ptr())

    def predicted_columns(self) -> torch.Tensor:
        out = torch.zeros(self.streams, self.num_columns, dtype=torch.bool)
        self.lib.cogsim_htm_tm_predicted(self.handle, out.data_ptr(), None)
        return out

    def predictive_cells(self) -> torch.Tensor:
        out = torch.zeros(self.streams, self.num_cells, dtype=torch.bool)
        self.lib.cogsim_htm_tm_predicted(self.handle, None, out.data_ptr())
        return out

    def stats(self) -> dict:
        """Per-stream live segments and synapses, the largest segment, bytes held, compactions so far."""
        S = self.streams
        nseg, nsyn, mx = (torch.zeros(S, dtype=torch.int64) for _ in range(3))
        comp = ctypes.c_int64(0)
        nbytes = self.lib.cogsim_htm_tm_stats(self.handle, nseg.data_ptr(), nsyn.data_ptr(), mx.data_ptr(),
                                              ctypes.byref(comp))
        return {"segments": nseg, "synapses": nsyn, "max_synapses": mx, "bytes": int(nbytes),
                "compactions": int(comp.value)}

    def export(self, min_width: int, pad: int) -> dict[str, torch.Tensor]:
        """The state in the torch layout (segments by uid, synapses by presynaptic cell; docs/design.md §5.2.3)."""
        st = self.stats()
        S, N = self.streams, self.num_cells
        cap = max(16, int(st["segments"].max()))
        width = max(min_width, int(st["max_synapses"].max()))
        out = {
            "syn_pre": torch.full((S * cap, width), pad, dtype=torch.int32),
            "syn_perm": torch.zeros((S * cap, width), dtype=torch.float32),
            "seg_cell": torch.full((S * cap,), -1, dtype=torch.int32),
            "seg_uid": torch.zeros(S * cap, dtype=torch.int64),
            "seg_last": torch.zeros(S * cap, dtype=torch.int64),
            "seg_nsyn": torch.zeros(S * cap, dtype=torch.int32),
            "seg_top": torch.zeros(S, dtype=torch.int64),
            "next_uid": torch.zeros(S, dtype=torch.int64),
            "cell_nseg": torch.zeros(S * N, dtype=torch.int32),
        }
        self.lib.cogsim_htm_tm_export(self.handle, cap, width, *(out[k].data_ptr() for k in (
            "syn_pre", "syn_perm", "seg_cell", "seg_uid", "seg_last", "seg_nsyn", "seg_top", "next_uid", "cell_nseg")))
        return out

    def load(self, b: dict[str, torch.Tensor], prev_active: torch.Tensor, prev_winner: torch.Tensor) -> None:
        """Rebuild from torch-layout buffers (CPU, contiguous) and the saved active/winner cells."""
        S = self.streams
        cap = b["seg_cell"].numel() // S
        width = b["syn_pre"].shape[1]
        t = {k: b[k].contiguous() for k in ("syn_pre", "syn_perm", "seg_cell", "seg_uid", "seg_last", "next_uid")}
        act, win = prev_active.contiguous(), prev_winner.contiguous()
        bad = self.lib.cogsim_htm_tm_load(self.handle, cap, width, t["syn_pre"].data_ptr(), t["syn_perm"].data_ptr(),
                                          t["seg_cell"].data_ptr(), t["seg_uid"].data_ptr(), t["seg_last"].data_ptr(),
                                          t["next_uid"].data_ptr(), act.data_ptr(), win.data_ptr())
        if bad:
            raise ValueError(f"temporal memory state: segment row {bad - 1} is inconsistent (cell or presynaptic "
                             "cell outside its stream, too many synapses or segments)")
