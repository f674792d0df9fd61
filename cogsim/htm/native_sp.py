"""Native (C) CPU kernel of the spatial pooler's step with global inhibition (``native_sp.c``): the
torch path's arithmetic, bit for bit, one stream at a time in plain loops, streams over threads.

Why: a torch step over 58 streams × 2048 columns is a few dozen ops on large tensors (~17 ms on a
2-core CPU); the same work as per-stream loops takes ~1.5-2 ms. It works in place on the pooler's
buffers plus a bitset of connected synapses (docs/design.md §5.2.2).
"""
from __future__ import annotations

import ctypes

import torch

from cogsim.htm.native_tm import threads_for
from cogsim.native import EXACT_CFLAGS, NativeLibrary

ABI = 1
#: columns (streams × columns) worth a thread of their own in a step (a stream of 2048 columns over
#: 400 inputs steps in ~35 µs, and a thread costs tens of µs to start)
COLUMNS_PER_THREAD = 16384
#: synapses (streams × columns × inputs) worth a thread of their own when the bitsets are rebuilt
SYNAPSES_PER_THREAD = 1 << 20


class _Step(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int64) for n in ("S", "C", "I", "W")] + [
        (n, ctypes.c_void_p) for n in ("x", "perm", "bits", "boost", "overlap_duty", "active_duty",
                                       "min_overlap_duty", "n_desired", "overlaps", "active", "bumped")] + [
        (n, ctypes.c_int32) for n in ("learn", "stimulus_threshold", "update_min_duty")] + [
        (n, ctypes.c_float) for n in ("connected", "inc", "dec", "bump", "duty_decay", "duty_inc",
                                      "min_pct_overlap_duty")]


def _declare(lib: ctypes.CDLL) -> None:
    if lib.cogsim_htm_sp_abi() != ABI:
        raise RuntimeError("stale kernel library")
    for name in ("cogsim_htm_sp_step", "cogsim_htm_sp_bits"):
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = [ctypes.POINTER(_Step), ctypes.c_int32], None


#: switched off with COGSIM_HTM_SP_NATIVE=0 (the SP alone) or COGSIM_HTM_NATIVE=0 (all HTM kernels)
LIBRARY = NativeLibrary("htm_sp", __package__, "native_sp.c", ("COGSIM_HTM_SP_NATIVE", "COGSIM_HTM_NATIVE"), _declare,
                        {"COGSIM_ABI": ABI}, cflags=EXACT_CFLAGS)


def library() -> ctypes.CDLL | None:
    """The compiled kernel library (built on first use); ``None`` when unavailable or disabled."""
    return LIBRARY.get()


def words(num_columns: int) -> int:
    """64-bit words of one input's row of connected bits."""
    return (num_columns + 63) // 64


def connected_bits(sp, threads: int | None = None) -> torch.Tensor:
    """Connected bitsets [streams, inputs, words] (int64 storage of uint64 words) from the pooler's
    permanences: bit c of an input's row is set when column c's synapse to it is connected."""
    S, C, I = sp.streams, sp.num_columns, sp.input_size
    bits = torch.empty(S, I, words(C), dtype=torch.int64)
    args = _Step(S=S, C=C, I=I, W=words(C), perm=sp.permanence.contiguous().data_ptr(), bits=bits.data_ptr(),
                 connected=sp._connected)
    if threads is None:
        threads = threads_for(S, S * C * I, SYNAPSES_PER_THREAD)
    library().cogsim_htm_sp_bits(ctypes.byref(args), max(1, threads))
    return bits


def step(sp, bits: torch.Tensor, x: torch.Tensor, learn: bool, n_desired: torch.Tensor, duty_decay: float,
         duty_inc: float, boosting: bool, update_min_duty: bool,
         threads: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of every stream on the pooler's (CPU, contiguous) buffers and ``bits``, in place.
    ``x`` is bool [streams, inputs] contiguous; ``n_desired`` the winners per stream; ``boosting``
    whether overlaps are multiplied by the boost factors. Returns overlaps [S, C] int64, active
    columns [S, C] bool and the number of bumped columns per stream [S] (zeros without learning).
    With ``update_min_duty`` (and learning) the minimum overlap duty cycles are recomputed at the end,
    as the torch path's global-inhibition ``_update_min_duty_cycles`` does."""
    S, C, I = sp.streams, sp.num_columns, sp.input_size
    overlaps = torch.empty(S, C, dtype=torch.int64)
    active = torch.empty(S, C, dtype=torch.bool)
    bumped = torch.zeros(S, dtype=torch.int64)
    boost = sp.boost.contiguous() if boosting else None
    nd = n_desired.to(torch.int64).contiguous()
    args = _Step(S=S, C=C, I=I, W=words(C), x=x.data_ptr(), perm=sp.permanence.data_ptr(), bits=bits.data_ptr(),
                 boost=None if boost is None else boost.data_ptr(), overlap_duty=sp.overlap_duty.data_ptr(),
                 active_duty=sp.active_duty.data_ptr(), min_overlap_duty=sp.min_overlap_duty.data_ptr(),
                 n_desired=nd.data_ptr(),
                 overlaps=overlaps.data_ptr(), active=active.data_ptr(), bumped=bumped.data_ptr(),
                 learn=int(learn), stimulus_threshold=sp.stimulus_threshold,
                 update_min_duty=int(learn and update_min_duty), connected=sp._connected,
                 min_pct_overlap_duty=sp.min_pct_overlap_duty_cycle,
                 inc=sp.syn_perm_active_inc, dec=sp.syn_perm_inactive_dec, bump=sp.syn_perm_below_stimulus_inc,
                 duty_decay=duty_decay, duty_inc=duty_inc)
    if threads is None:
        threads = threads_for(S, S * C, COLUMNS_PER_THREAD)
    library().cogsim_htm_sp_step(ctypes.byref(args), max(1, min(threads, S)))
    return overlaps, active, bumped
