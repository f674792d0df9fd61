"""Native CPU kernel for the Engram n-gram hash (``native_hash.c``): one fused pass per position, no
division instruction; its exactness is proved in docs/design.md §5.1.1.

Built on first use by :mod:`cogsim.native`; without a compiler (or with ``COGSIM_ENGRAM_NATIVE=0``)
:func:`library` returns ``None`` and the hash uses its torch path.
"""
from __future__ import annotations

import ctypes

import numpy as np
import torch

from cogsim.native import EXACT_CFLAGS, NativeLibrary, kernel_threads

ABI = 1
#: Head results (positions × layers × heads) below which one thread does the whole batch: starting
#: threads costs more than it saves on small batches (~20 µs each).
MIN_PARALLEL_ITEMS = 1 << 16
#: Primes the float64-quotient modulo handles exactly (docs/design.md §5.1.1).
F64_MIN_PRIME, F64_MAX_PRIME = 1 << 13, 1 << 31

_P = ctypes.c_void_p
_I64, _INT = ctypes.c_int64, ctypes.c_int


def _declare(lib: ctypes.CDLL) -> None:
    if lib.cogsim_engram_hash_abi() != ABI:
        raise RuntimeError("stale kernel library")
    lib.cogsim_engram_hash.argtypes = [_P, _I64, _I64, _I64, _I64, _I64, _INT, _INT, _INT, _P, _P, _P, _P, _P, _P,
                                       _P, _P, _INT]
    lib.cogsim_engram_hash.restype = None
    lib.cogsim_engram_floor_mod.argtypes = [_P, _I64, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_uint64, _INT,
                                            ctypes.c_double, _P]
    lib.cogsim_engram_floor_mod.restype = None


LIBRARY = NativeLibrary("engram_hash", __package__, "native_hash.c", "COGSIM_ENGRAM_NATIVE", _declare,
                        {"COGSIM_ABI": ABI}, cflags=EXACT_CFLAGS)


def library() -> ctypes.CDLL | None:
    """The compiled kernel library, building it on first use; ``None`` when unavailable."""
    return LIBRARY.get()


def status() -> str:
    """One line: whether the native hash kernel is in use, and why not."""
    return LIBRARY.status()


def reciprocal(p: int) -> tuple[int, int, int, int]:
    """(m, p, c, s) for the kernel's floor modulo by ``p`` (2 <= p < 2**63): magic multiplier m,
    c = 2**64 mod p and shift s = ceil(log2 p) − 1 (proof: docs/design.md §5.1.1)."""
    if not 2 <= p < 1 << 63:
        raise ValueError(f"divisor must be in [2, 2**63), got {p}")
    ell = (p - 1).bit_length()  # ceil(log2 p)
    m = ((1 << 64) * ((1 << ell) - p)) // p + 1
    assert 0 < m < 1 << 64
    return m, p, (1 << 64) % p, ell - 1


class HashConstants:
    """Per-mapping kernel constants as contiguous arrays: multipliers [L, N] and, per head
    [L, (N-1)·heads], the reciprocal of its prime and, when every prime is in [F64_MIN_PRIME,
    F64_MAX_PRIME], the float64 path's 1/p and p."""

    def __init__(self, multipliers: np.ndarray, primes: np.ndarray, pad_id: int):
        self.layers, self.n = multipliers.shape
        self.heads = primes.shape[-1]
        self.pad_id = int(pad_id)
        self.mult = np.ascontiguousarray(multipliers.astype(np.int64).view(np.uint64))
        flat = [int(p) for p in primes.reshape(-1)]
        recips = np.array([reciprocal(p) for p in flat], dtype=object).reshape(-1, 4)
        shape = (self.layers, (self.n - 1) * self.heads)
        self.magic, self.prime, self.wrap = (np.ascontiguousarray(recips[:, k].astype(np.uint64).reshape(shape))
                                             for k in range(3))
        self.shift = np.ascontiguousarray(recips[:, 3].astype(np.uint8).reshape(shape))
        self.f64 = F64_MIN_PRIME <= min(flat) and max(flat) <= F64_MAX_PRIME
        if self.f64:
            self.inv = 1.0 / np.array(flat, dtype=np.float64).reshape(shape)  # correctly rounded 1/p
            self.prime32 = np.array(flat, dtype=np.uint32).reshape(shape)
        self._pointers: dict[bool, tuple[int | None, ...]] = {}

    def pointers(self, f64: bool) -> tuple[int | None, ...]:
        """Addresses of the constant arrays in the kernel's argument order (cached: ``.ctypes.data``
        costs microseconds, as much as hashing a short sequence)."""
        ptrs = self._pointers.get(f64)
        if ptrs is None:
            arrays = [self.mult, self.magic, self.prime, self.wrap, self.shift]
            ptrs = tuple(a.ctypes.data for a in arrays) + ((self.inv.ctypes.data, self.prime32.ctypes.data)
                                                          if f64 else (None, None))
            self._pointers[f64] = ptrs
        return ptrs

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_pointers": {}}  # addresses do not survive a copy




def hash_rows(x: torch.Tensor, c: HashConstants, threads: int | None = None, f64: bool | None = None) -> torch.Tensor:
    """int64 [L, B, T, (N-1)·heads] rows of CPU int64 ids [B, T] (any strides). ``f64``: use the
    float64-quotient modulo (default: whenever the primes allow it) or the reciprocal."""
    lib = library()
    if lib is None:
        raise RuntimeError(status())
    if f64 is None:
        f64 = c.f64
    elif f64 and not c.f64:
        raise ValueError(f"the float64 modulo needs primes in [{F64_MIN_PRIME}, {F64_MAX_PRIME}]")
    batch, length = x.shape
    out = torch.empty((c.layers, batch, length, (c.n - 1) * c.heads), dtype=torch.int64)
    if out.numel() == 0:
        return out
    if threads is None:
        threads = kernel_threads(out.numel(), MIN_PARALLEL_ITEMS)
    lib.cogsim_engram_hash(x.data_ptr(), batch, length, x.stride(0), x.stride(1), c.pad_id, c.layers, c.n,
                           c.heads, *c.pointers(bool(f64)), out.data_ptr(), int(threads))
    return out


def floor_mod(x: np.ndarray, p: int, f64: bool = False) -> np.ndarray:
    """``x % p`` (floor modulo) of int64 ``x`` by the kernel's reciprocal, or by its float64 path
    (``f64``, for p in [F64_MIN_PRIME, F64_MAX_PRIME]); for tests and checks."""
    lib = library()
    if lib is None:
        raise RuntimeError(status())
    if f64 and not F64_MIN_PRIME <= p <= F64_MAX_PRIME:
        raise ValueError(f"the float64 modulo needs p in [{F64_MIN_PRIME}, {F64_MAX_PRIME}], got {p}")
    x = np.ascontiguousarray(x, dtype=np.int64)
    out = np.empty_like(x)
    m, p, c, s = reciprocal(int(p))
    lib.cogsim_engram_floor_mod(x.ctypes.data, x.size, m, p, c, s, 1.0 / p if f64 else 0.0, out.ctypes.data)
    return out


__all__ = ["library", "status", "reciprocal", "HashConstants", "hash_rows", "floor_mod", "MIN_PARALLEL_ITEMS", "F64_MIN_PRIME",
           "F64_MAX_PRIME"]
