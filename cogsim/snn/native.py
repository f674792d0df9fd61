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

from cogsim.native import EXACT_CFLAGS, PARALLEL_C, NativeLibrary

ABI = 2

_COMMON = PARALLEL_C + r"""
#include <stdlib.h>
#include <math.h>

#define INL static inline __attribute__((always_inline))
#define BLK 512

/* Split [0, M) into nthreads ranges (multiples of 16 elements) and run fn on each. */
static void run_parallel(range_fn fn, const void *args, int64_t M, int nthreads) {
  run_parallel_aligned(fn, args, M, nthreads, 16);
}

int cogsim_snn_abi(void) { return %(abi)d; }
/* Backward: dalpha/dbeta/dthr may be NULL (not needed); then none of them is computed. */
"""

# Written once with REAL/SFX placeholders, instantiated for float and double.
_TEMPLATE = r"""
typedef struct {
  const REAL *x, *alpha, *beta, *thr, *syn0, *mem0;
  REAL *spk, *syn, *mem;
  int64_t T, M; int reset;
} fwd_SFX;

typedef struct {
  const REAL *gs, *gsyn, *gm, *syn, *mem, *syn0, *mem0, *alpha, *beta, *thr, *sg;
  int kind; double p1, p2;
  REAL *dx, *dalpha, *dbeta, *dthr, *dsyn0, *dmem0;
  int64_t T, M; int reset;
} bwd_SFX;

/* snntorch.surrogate backward formulas, dS/du at u = mem - threshold. */
INL void surrogate_row_SFX(int kind, double p1, double p2, const REAL *restrict m, const REAL *restrict th,
                           const REAL *restrict pre, REAL *restrict sg, int64_t n) {
  int64_t j;
  switch (kind) {
  case 0: { const REAL k = (REAL)(M_PI / 2 * p1), h = (REAL)(p1 / 2);
    for (j = 0; j < n; ++j) { REAL v = k * (m[j] - th[j]); sg[j] = h / (1 + v * v); } break; }
  case 1: { const REAL k = (REAL)p1;
    for (j = 0; j < n; ++j) { REAL d = k * FABS(m[j] - th[j]) + (REAL)1; sg[j] = (REAL)1 / (d * d); } break; }
  case 2: { const REAL k = (REAL)p1;
    for (j = 0; j < n; ++j) { REAL e = EXP(-k * (m[j] - th[j])); sg[j] = k * e / ((e + 1) * (e + 1)); } break; }
  case 3: for (j = 0; j < n; ++j) sg[j] = 1; break;
  case 4: { const REAL k = (REAL)p1;
    for (j = 0; j < n; ++j) { sg[j] = (m[j] - th[j] >= 0) ? -k : k; } break; }
  case 5: for (j = 0; j < n; ++j) sg[j] = (m[j] - th[j] > 0) ? 1 : 0; break;
  case 6: { const REAL b = (REAL)p1, k = (REAL)p2;
    for (j = 0; j < n; ++j) { sg[j] = k * EXP(-b * FABS(m[j] - th[j] - 1)); } break; }
  case 7: { const REAL k = (REAL)p1, B = (REAL)p2;
    for (j = 0; j < n; ++j) { REAL u = m[j] - th[j]; REAL d = k * FABS(u) + (REAL)1;
      sg[j] = (REAL)1 / (d * d) * (u > B ? (REAL)1 : (REAL)0); } break; }
  default: for (j = 0; j < n; ++j) sg[j] = pre[j]; break;
  }
}

/* ---- Leaky: mem = beta*mem + x (- reset*thr | with mem zeroed), spike = mem - thr > 0 ---- */
INL void leaky_fwd_row_SFX(int reset, const REAL *restrict x, const REAL *restrict prev,
                           const REAL *restrict b, const REAL *restrict th,
                           REAL *restrict m, REAL *restrict s, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    const REAL p = prev[j], h = th[j];
    const REAL r = (p - h > 0) ? (REAL)1 : (REAL)0;
    REAL v;
    if (reset == 0) v = (b[j] * p + x[j]) - r * h;
    else if (reset == 1) v = b[j] * (((REAL)1 - r) * p) + x[j];
    else v = b[j] * p + x[j];
    m[j] = v;
    s[j] = (v - h > 0) ? (REAL)1 : (REAL)0;
  }
}

static void leaky_fwd_range_SFX(const void *pa, int64_t i0, int64_t i1) {
  const fwd_SFX *a = (const fwd_SFX *)pa;
  const int64_t M = a->M;
  for (int64_t o = i0; o < i1; o += BLK) {
    const int64_t n = i1 - o < BLK ? i1 - o : BLK;
    for (int64_t t = 0; t < a->T; ++t) {
      const REAL *prev = t ? a->mem + (t - 1) * M + o : a->mem0 + o;
      const REAL *x = a->x + t * M + o;
      REAL *m = a->mem + t * M + o, *s = a->spk + t * M + o;
#define ROW(...) leaky_fwd_row_SFX(__VA_ARGS__, x, prev, a->beta + o, a->thr + o, m, s, n)
      switch (a->reset) {
      case 0: ROW(0); break;
      case 1: ROW(1); break;
      default: ROW(2); break;
      }
    }
  }
}
#undef ROW

INL void leaky_bwd_row_SFX(int reset, int params, const REAL *restrict gs, const REAL *restrict gm,
                           const REAL *restrict m, const REAL *restrict prev, const REAL *restrict b,
                           const REAL *restrict th, const REAL *restrict sg, const REAL *restrict anext,
                           REAL *restrict dx, REAL *restrict db, REAL *restrict dth, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    const REAL h = th[j];
    const REAL ds = gs[j] * sg[j];
    REAL c = b[j] * anext[j];
    if (reset == 1) c = (m[j] - h > 0) ? (REAL)0 : c;
    const REAL adj = gm[j] + ds + c;
    dx[j] = adj;
    if (params) {
      const REAL p = prev[j];
      const REAL r = (p - h > 0) ? (REAL)1 : (REAL)0;
      db[j] += adj * (reset == 1 ? ((REAL)1 - r) * p : p);
      dth[j] -= (reset == 0) ? ds + adj * r : ds;
    }
  }
}

static void leaky_bwd_range_SFX(const void *pa, int64_t i0, int64_t i1) {
  const bwd_SFX *a = (const bwd_SFX *)pa;
  const int64_t M = a->M, T = a->T;
  REAL zeros[BLK] = {0}, sg[BLK];
  for (int64_t o = i0; o < i1; o += BLK) {
    const int64_t n = i1 - o < BLK ? i1 - o : BLK;
    for (int64_t t = T - 1; t >= 0; --t) {
      const int64_t off = t * M + o;
      const REAL *m = a->mem + off;
      const REAL *prev = t ? a->mem + off - M : a->mem0 + o;
      surrogate_row_SFX(a->kind, a->p1, a->p2, m, a->thr + o, a->sg ? a->sg + off : zeros, sg, n);
      const REAL *gs = a->gs ? a->gs + off : zeros, *gm = a->gm ? a->gm + off : zeros;
      const REAL *anext = t + 1 < T ? a->dx + off + M : zeros;
      REAL *db = a->dbeta ? a->dbeta + o : NULL, *dth = a->dthr ? a->dthr + o : NULL;
#define ROW(...) leaky_bwd_row_SFX(__VA_ARGS__, \
    gs, gm, m, prev, a->beta + o, a->thr + o, sg, anext, a->dx + off, db, dth, n)
      switch (a->reset * 2 + (a->dbeta != NULL)) {
      case 0: ROW(0, 0); break;
      case 1: ROW(0, 1); break;
      case 2: ROW(1, 0); break;
      case 3: ROW(1, 1); break;
      case 4: ROW(2, 0); break;
      default: ROW(2, 1); break;
      }
    }
    for (int64_t j = 0; j < n; ++j) {
      const REAL p = a->mem0[o + j], h = a->thr[o + j];
      const REAL keep = (a->reset == 1 && p - h > 0) ? (REAL)0 : (REAL)1;
      a->dmem0[o + j] = a->beta[o + j] * keep * a->dx[o + j];
    }
  }
}
#undef ROW

/* ---- Synaptic: syn = alpha*syn + x; mem = beta*mem + syn (- reset*thr | zeroed) ---- */
INL void syn_fwd_row_SFX(int reset, const REAL *restrict x, const REAL *restrict ps, const REAL *restrict pm,
                         const REAL *restrict al, const REAL *restrict b, const REAL *restrict th,
                         REAL *restrict sy, REAL *restrict m, REAL *restrict s, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    const REAL p = pm[j], h = th[j];
    const REAL r = (p - h > 0) ? (REAL)1 : (REAL)0;
    const REAL cur = al[j] * ps[j] + x[j];
    const REAL base = b[j] * p + cur;
    REAL v;
    if (reset == 0) v = base - r * h;
    else if (reset == 1) v = base - base * r;
    else v = base;
    sy[j] = cur; m[j] = v;
    s[j] = (v - h > 0) ? (REAL)1 : (REAL)0;
  }
}

static void syn_fwd_range_SFX(const void *pa, int64_t i0, int64_t i1) {
  const fwd_SFX *a = (const fwd_SFX *)pa;
  const int64_t M = a->M;
  for (int64_t o = i0; o < i1; o += BLK) {
    const int64_t n = i1 - o < BLK ? i1 - o : BLK;
    for (int64_t t = 0; t < a->T; ++t) {
      const int64_t off = t * M + o;
      const REAL *pm = t ? a->mem + off - M : a->mem0 + o, *ps = t ? a->syn + off - M : a->syn0 + o;
#define ROW(...) syn_fwd_row_SFX(__VA_ARGS__, \
    a->x + off, ps, pm, a->alpha + o, a->beta + o, a->thr + o, a->syn + off, a->mem + off, a->spk + off, n)
      switch (a->reset) {
      case 0: ROW(0); break;
      case 1: ROW(1); break;
      default: ROW(2); break;
      }
    }
  }
}
#undef ROW

INL void syn_bwd_row_SFX(int reset, int params,
                         const REAL *restrict gs, const REAL *restrict gsyn, const REAL *restrict gm,
                         const REAL *restrict m, const REAL *restrict pm, const REAL *restrict ps,
                         const REAL *restrict al, const REAL *restrict b, const REAL *restrict th,
                         const REAL *restrict sg, REAL *restrict acarry, const REAL *restrict snext,
                         REAL *restrict dx, REAL *restrict dal, REAL *restrict db, REAL *restrict dth, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    const REAL h = th[j];
    const REAL ds = gs[j] * sg[j];
    REAL c = b[j] * acarry[j];
    if (reset == 1) c = (m[j] - h > 0) ? (REAL)0 : c;
    const REAL adj = gm[j] + ds + c;           /* d loss / d mem_t */
    const REAL p = pm[j];
    const REAL r = (p - h > 0) ? (REAL)1 : (REAL)0;
    const REAL keep = reset == 1 ? (REAL)1 - r : (REAL)1;
    const REAL sadj = gsyn[j] + keep * adj + al[j] * snext[j];   /* d loss / d syn_t */
    acarry[j] = adj;
    dx[j] = sadj;
    if (params) {
      db[j] += keep * adj * p;
      dal[j] += sadj * ps[j];
      dth[j] -= (reset == 0) ? ds + adj * r : ds;
    }
  }
}

static void syn_bwd_range_SFX(const void *pa, int64_t i0, int64_t i1) {
  const bwd_SFX *a = (const bwd_SFX *)pa;
  const int64_t M = a->M, T = a->T;
  REAL zeros[BLK] = {0}, sg[BLK], acarry[BLK];
  for (int64_t o = i0; o < i1; o += BLK) {
    const int64_t n = i1 - o < BLK ? i1 - o : BLK;
    for (int64_t j = 0; j < n; ++j) acarry[j] = 0;
    for (int64_t t = T - 1; t >= 0; --t) {
      const int64_t off = t * M + o;
      const REAL *m = a->mem + off;
      const REAL *pm = t ? a->mem + off - M : a->mem0 + o, *ps = t ? a->syn + off - M : a->syn0 + o;
      surrogate_row_SFX(a->kind, a->p1, a->p2, m, a->thr + o, a->sg ? a->sg + off : zeros, sg, n);
      const REAL *gs = a->gs ? a->gs + off : zeros, *gm = a->gm ? a->gm + off : zeros;
      const REAL *gsyn = a->gsyn ? a->gsyn + off : zeros;
      const REAL *snext = t + 1 < T ? a->dx + off + M : zeros;
      REAL *db = a->dbeta ? a->dbeta + o : NULL, *dth = a->dthr ? a->dthr + o : NULL;
      REAL *dal = a->dalpha ? a->dalpha + o : NULL;
#define ROW(...) syn_bwd_row_SFX(__VA_ARGS__, \
    gs, gsyn, gm, m, pm, ps, a->alpha + o, a->beta + o, a->thr + o, sg, acarry, snext, a->dx + off, dal, db, dth, n)
      switch (a->reset * 2 + (a->dbeta != NULL)) {
      case 0: ROW(0, 0); break;
      case 1: ROW(0, 1); break;
      case 2: ROW(1, 0); break;
      case 3: ROW(1, 1); break;
      case 4: ROW(2, 0); break;
      default: ROW(2, 1); break;
      }
    }
    for (int64_t j = 0; j < n; ++j) {
      const REAL p = a->mem0[o + j], h = a->thr[o + j];
      const REAL keep = (a->reset == 1 && p - h > 0) ? (REAL)0 : (REAL)1;
      a->dmem0[o + j] = a->beta[o + j] * keep * acarry[j];
      a->dsyn0[o + j] = a->alpha[o + j] * a->dx[o + j];
    }
  }
}
#undef ROW

void cogsim_leaky_fwd_SFX(const fwd_SFX *a, int nthreads) { run_parallel(leaky_fwd_range_SFX, a, a->M, nthreads); }
void cogsim_leaky_bwd_SFX(const bwd_SFX *a, int nthreads) { run_parallel(leaky_bwd_range_SFX, a, a->M, nthreads); }
void cogsim_syn_fwd_SFX(const fwd_SFX *a, int nthreads) { run_parallel(syn_fwd_range_SFX, a, a->M, nthreads); }
void cogsim_syn_bwd_SFX(const bwd_SFX *a, int nthreads) { run_parallel(syn_bwd_range_SFX, a, a->M, nthreads); }
"""

SOURCE = (_COMMON % {"abi": ABI}
          + _TEMPLATE.replace("REAL", "float").replace("SFX", "f32").replace("EXP", "expf").replace("FABS", "fabsf")
          + _TEMPLATE.replace("REAL", "double").replace("SFX", "f64").replace("EXP", "exp").replace("FABS", "fabs"))

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
LIBRARY = NativeLibrary("lif", SOURCE, "COGSIM_SNN_NATIVE", _declare, EXACT_CFLAGS)


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


def _threads(m: int) -> int:
    return max(1, min(torch.get_num_threads(), m // 4096 or 1))


def leaky_forward(x, beta, thr, mem0, reset: str):
    """x [T, M] contiguous; beta, thr, mem0 [M] contiguous. Returns (spikes, mem) [T, M]."""
    T, M = x.shape
    spk, mem = torch.empty_like(x), torch.empty_like(x)
    args = _Fwd(x=_ptr(x), beta=_ptr(beta), thr=_ptr(thr), mem0=_ptr(mem0), spk=_ptr(spk), mem=_ptr(mem),
                T=T, M=M, reset=RESET_CODES[reset])
    getattr(library(), f"cogsim_leaky_fwd_{SUFFIX[x.dtype]}")(ctypes.byref(args), _threads(M))
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
    getattr(library(), f"cogsim_leaky_bwd_{SUFFIX[mem.dtype]}")(ctypes.byref(args), _threads(M))
    return dx, dbeta, dthr, dmem0


def synaptic_forward(x, alpha, beta, thr, syn0, mem0, reset: str):
    """Returns (spikes, syn, mem) [T, M]."""
    T, M = x.shape
    spk, syn, mem = torch.empty_like(x), torch.empty_like(x), torch.empty_like(x)
    args = _Fwd(x=_ptr(x), alpha=_ptr(alpha), beta=_ptr(beta), thr=_ptr(thr), syn0=_ptr(syn0),
                mem0=_ptr(mem0), spk=_ptr(spk), syn=_ptr(syn), mem=_ptr(mem), T=T, M=M,
                reset=RESET_CODES[reset])
    getattr(library(), f"cogsim_syn_fwd_{SUFFIX[x.dtype]}")(ctypes.byref(args), _threads(M))
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
    getattr(library(), f"cogsim_syn_bwd_{SUFFIX[mem.dtype]}")(ctypes.byref(args), _threads(M))
    return dx, dalpha, dbeta, dthr, dsyn0, dmem0


__all__ = ["library", "status", "supports", "leaky_forward", "leaky_backward", "synaptic_forward",
           "synaptic_backward", "SOURCE"]
