"""Native whole-sequence LIF / synaptic kernels: a small C library built with the system compiler at
first use, cached on disk, and called through ctypes (no torch headers, so a build takes ~1 s).

Each kernel runs the recurrence over all T steps for a block of neurons while the block stays in
cache (time loop inside, vectorised neuron loop innermost), split across threads by neuron range.
The arithmetic is written in the same order as snntorch's tensor expressions and compiled without
floating-point contraction, so forward membranes and spikes are bit-identical to ``snntorch.Leaky``
/ ``snntorch.Synaptic``. Without a compiler (or with ``COGSIM_SNN_NATIVE=0``) :func:`library`
returns ``None`` and callers use the pure-torch path.
"""
from __future__ import annotations

import ctypes

import torch

from cogsim.native import EXACT_CFLAGS, NativeLibrary, kernel_threads

ABI = 2
#: neuron-steps (T × neurons) worth a thread of their own. Forward and backward stream ~40 bytes per
#: neuron-step, so a second thread mostly competes for memory bandwidth: on the 2-core CPU two threads
#: took 60% more CPU time at T=25, batch 64, 512 neurons (819,200) and 40% more at 4x that, with no
#: faster best wall time (load average ~7 then). Right after a torch op the other core may also still
#: be held by a spinning OpenMP worker (4.9 ms on two threads against 3.5 ms on one at that size).
WORK_PER_THREAD = 1 << 22

_P = ctypes.c_void_p


class _Fwd(ctypes.Structure):
    _fields_ = [(n, _P) for n in ("x", "alpha", "beta", "thr", "syn0", "mem0", "spk", "syn", "mem")] + [
        ("T", ctypes.c_int64), ("M", ctypes.c_int64), ("reset", ctypes.c_int)]


class _Bwd(ctypes.Structure):
    _fields_ = [(n, _P) for n in ("gs", "gsyn", "gm", "syn", "mem", "syn0", "mem0", "alpha", "beta", "thr",
                                  "sg")] + [
        ("kind", ctypes.c_int), ("p1", ctypes.c_double), ("p2", ctypes.c_double)] + [
        (n, _P) for n in ("dx", "dalpha", "dbeta", "dthr", "dsyn0", "dmem0")] + [
        ("T", ctypes.c_int64), ("M", ctypes.c_int64), ("reset", ctypes.c_int)]


RESET_CODES = {"subtract": 0, "zero": 1, "none": 2}
SUFFIX = {torch.float32: "f32", torch.float64: "f64"}


def _declare(lib: ctypes.CDLL) -> None:
    if lib.cogsim_snn_abi() != ABI:
        raise RuntimeError("stale kernel library")
    for name in ("leaky_fwd", "leaky_bwd", "syn_fwd", "syn_bwd"):
        for sfx in SUFFIX.values():
            fn = getattr(lib, f"cogsim_{name}_{sfx}")
            fn.argtypes = [_P, ctypes.c_int]
            fn.restype = None


#: No FMA contraction and no fast-math (EXACT_CFLAGS): results equal torch's separately rounded ops.
LIBRARY = NativeLibrary("lif", __package__, "native.c", "COGSIM_SNN_NATIVE", _declare, {"COGSIM_ABI": ABI},
                        headers=("native_neurons.h",), cflags=EXACT_CFLAGS)


def library() -> ctypes.CDLL | None:
    """The compiled kernel library, building it on first use; ``None`` when unavailable."""
    return LIBRARY.get()


def status() -> str:
    """One line: whether the native kernels are in use, and why not."""
    return LIBRARY.status()


def supports(t: torch.Tensor) -> bool:
    """Whether the native kernels can run on this tensor (CPU float32/float64)."""
    return t.device.type == "cpu" and t.dtype in SUFFIX and library() is not None


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def threads_for(t: int, m: int) -> int:
    """Kernel threads for T = ``t`` steps of ``m`` neurons (by work size, see ``WORK_PER_THREAD``)."""
    return kernel_threads(t * m, WORK_PER_THREAD)


def leaky_forward(x, beta, thr, mem0, reset: str):
    """x [T, M] contiguous; beta, thr, mem0 [M] contiguous. Returns (spikes, mem) [T, M]."""
    T, M = x.shape
    spk, mem = torch.empty_like(x), torch.empty_like(x)
    args = _Fwd(x=_ptr(x), beta=_ptr(beta), thr=_ptr(thr), mem0=_ptr(mem0), spk=_ptr(spk), mem=_ptr(mem),
                T=T, M=M, reset=RESET_CODES[reset])
    getattr(library(), f"cogsim_leaky_fwd_{SUFFIX[x.dtype]}")(ctypes.byref(args), threads_for(T, M))
    return spk, mem


def leaky_backward(gs, gm, mem, mem0, beta, thr, sg, kind, params, reset: str, param_grads: bool = True):
    """Reverse-time adjoint. Returns (dx [T, M], dbeta [M], dthr [M], dmem0 [M]) per element;
    dbeta and dthr are None unless ``param_grads``."""
    T, M = mem.shape
    dx, dmem0 = torch.empty_like(mem), torch.empty(M, dtype=mem.dtype)
    dbeta, dthr = (torch.zeros(M, dtype=mem.dtype) if param_grads else None for _ in range(2))
    p = (tuple(params) + (0.0, 0.0))[:2]
    args = _Bwd(gs=_ptr(gs), gm=_ptr(gm), mem=_ptr(mem), mem0=_ptr(mem0), beta=_ptr(beta), thr=_ptr(thr),
                sg=_ptr(sg), kind=kind, p1=p[0], p2=p[1], dx=_ptr(dx), dbeta=_ptr(dbeta), dthr=_ptr(dthr),
                dmem0=_ptr(dmem0), T=T, M=M, reset=RESET_CODES[reset])
    getattr(library(), f"cogsim_leaky_bwd_{SUFFIX[mem.dtype]}")(ctypes.byref(args), threads_for(T, M))
    return dx, dbeta, dthr, dmem0


def synaptic_forward(x, alpha, beta, thr, syn0, mem0, reset: str):
    """Returns (spikes, syn, mem) [T, M]."""
    T, M = x.shape
    spk, syn, mem = torch.empty_like(x), torch.empty_like(x), torch.empty_like(x)
    args = _Fwd(x=_ptr(x), alpha=_ptr(alpha), beta=_ptr(beta), thr=_ptr(thr), syn0=_ptr(syn0),
                mem0=_ptr(mem0), spk=_ptr(spk), syn=_ptr(syn), mem=_ptr(mem), T=T, M=M,
                reset=RESET_CODES[reset])
    getattr(library(), f"cogsim_syn_fwd_{SUFFIX[x.dtype]}")(ctypes.byref(args), threads_for(T, M))
    return spk, syn, mem


def synaptic_backward(gs, gsyn, gm, syn, mem, syn0, mem0, alpha, beta, thr, sg, kind, params, reset: str,
                      param_grads: bool = True):
    """Returns (dx, dalpha, dbeta, dthr, dsyn0, dmem0), the last five per element [M]; dalpha, dbeta
    and dthr are None unless ``param_grads``."""
    T, M = mem.shape
    dx, dsyn0, dmem0 = torch.empty_like(mem), torch.empty(M, dtype=mem.dtype), torch.empty(M, dtype=mem.dtype)
    dalpha, dbeta, dthr = (torch.zeros(M, dtype=mem.dtype) if param_grads else None for _ in range(3))
    p = (tuple(params) + (0.0, 0.0))[:2]
    args = _Bwd(gs=_ptr(gs), gsyn=_ptr(gsyn), gm=_ptr(gm), syn=_ptr(syn), mem=_ptr(mem), syn0=_ptr(syn0),
                mem0=_ptr(mem0), alpha=_ptr(alpha), beta=_ptr(beta), thr=_ptr(thr), sg=_ptr(sg), kind=kind,
                p1=p[0], p2=p[1], dx=_ptr(dx), dalpha=_ptr(dalpha), dbeta=_ptr(dbeta), dthr=_ptr(dthr),
                dsyn0=_ptr(dsyn0), dmem0=_ptr(dmem0), T=T, M=M, reset=RESET_CODES[reset])
    getattr(library(), f"cogsim_syn_bwd_{SUFFIX[mem.dtype]}")(ctypes.byref(args), threads_for(T, M))
    return dx, dalpha, dbeta, dthr, dsyn0, dmem0


__all__ = ["library", "status", "supports", "leaky_forward", "leaky_backward", "synaptic_forward",
           "synaptic_backward"]
