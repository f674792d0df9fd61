"""Whole-sequence LIF / synaptic neurons as single autograd nodes (no autograd graph per step).

Forward runs the recurrence over all T steps, backward the reverse-time adjoint with the surrogate
derivative, both either in the native kernels (:mod:`cogsim.snn.native`) or in a torch loop that
works on any device and dtype. All tensors here are flat: inputs ``x [T, M]``, per-element
parameters ``[M]`` (already clamped, broadcast and contiguous); the caller reshapes.

Adjoint of the leaky neuron (``A_t = dL/dmem_t``; ``r_t = H(mem_{t-1} - thr)`` is detached, as in
snntorch; ``s_t = H(mem_t - thr)`` with surrogate ``σ'``)::

    A_t   = gmem_t + gspk_t σ'_t + β c_{t+1} A_{t+1}      c = 1 - r (reset zero) else 1
    dx_t  = A_t,  dβ += A_t c_t mem_{t-1},  dthr -= gspk_t σ'_t + [subtract] A_t r_t

The no-reset neuron is a linear recurrence and also has an exact parallel form (:func:`linear_scan`).
"""
from __future__ import annotations

import torch

from cogsim.snn import native
from cogsim.snn.surrogate import CUSTOM, Surrogate


def _heaviside(u: torch.Tensor) -> torch.Tensor:
    return (u > 0).to(u.dtype)


def _use_native(x: torch.Tensor, backend: str) -> bool:
    return backend == "native" and native.supports(x)


def _surrogate_pre(surrogate: Surrogate, mem: torch.Tensor, thr: torch.Tensor) -> torch.Tensor | None:
    """Precomputed σ'(mem - thr) for a callable surrogate (native kernels evaluate named ones)."""
    return surrogate.grad(mem - thr).contiguous() if surrogate.kind == CUSTOM else None


# ---------------------------------------------------------------------------------------------------
# Leaky (first order)
# ---------------------------------------------------------------------------------------------------
def leaky_forward_torch(x, beta, thr, mem0, reset):
    """Reference-order forward in torch ops, no graph. Returns (spikes, mem) [T, M]."""
    spk, mem = torch.empty_like(x), torch.empty_like(x)
    prev = mem0
    for t in range(x.shape[0]):
        r = _heaviside(prev - thr)
        if reset == "subtract":
            m = torch.add(beta * prev, x[t], out=mem[t]).sub_(r * thr)
        elif reset == "zero":
            m = torch.add(beta * ((1 - r) * prev), x[t], out=mem[t])
        else:
            m = torch.add(beta * prev, x[t], out=mem[t])
        torch.gt(m, thr, out=spk[t])
        prev = m
    return spk, mem


def leaky_backward_torch(gs, gm, mem, mem0, beta, thr, surrogate, reset):
    T = mem.shape[0]
    dx = torch.empty_like(mem)
    dbeta, dthr = torch.zeros_like(mem0), torch.zeros_like(mem0)
    nxt = None
    for t in range(T - 1, -1, -1):
        u = mem[t] - thr
        ds = gs[t] * surrogate.grad(u) if gs is not None else None
        adj = gm[t].clone() if gm is not None else torch.zeros_like(u)
        if ds is not None:
            adj += ds
        if nxt is not None:
            carry = beta * nxt
            adj += carry * (1 - _heaviside(u)) if reset == "zero" else carry
        dx[t] = adj
        prev = mem[t - 1] if t else mem0
        r = _heaviside(prev - thr)
        dbeta += adj * ((1 - r) * prev if reset == "zero" else prev)
        if ds is not None:
            dthr -= ds
        if reset == "subtract":
            dthr -= adj * r
        nxt = adj
    keep = 1 - _heaviside(mem0 - thr) if reset == "zero" else 1
    return dx, dbeta, dthr, beta * keep * dx[0]


class LeakySequence(torch.autograd.Function):
    """Leaky integrate-and-fire over a whole sequence: (x, beta, thr, mem0) → (spikes, mem)."""

    @staticmethod
    def forward(ctx, x, beta, thr, mem0, reset: str, surrogate: Surrogate, backend: str):
        ctx.set_materialize_grads(False)
        ctx.reset, ctx.surrogate, ctx.backend = reset, surrogate, backend
        if _use_native(x, backend):
            spk, mem = native.leaky_forward(x, beta, thr, mem0, reset)
        else:
            spk, mem = leaky_forward_torch(x, beta, thr, mem0, reset)
        ctx.save_for_backward(mem, beta, thr, mem0)
        return spk, mem

    @staticmethod
    def backward(ctx, gs, gm):
        mem, beta, thr, mem0 = ctx.saved_tensors
        if gs is None and gm is None:
            return None, None, None, None, None, None, None
        gs = gs.contiguous() if gs is not None else None
        gm = gm.contiguous() if gm is not None else None
        if _use_native(mem, ctx.backend):
            sg = _surrogate_pre(ctx.surrogate, mem, thr)
            dx, dbeta, dthr, dmem0 = native.leaky_backward(gs, gm, mem, mem0, beta, thr, sg, ctx.surrogate.kind,
                                                           ctx.surrogate.params, ctx.reset)
        else:
            dx, dbeta, dthr, dmem0 = leaky_backward_torch(gs, gm, mem, mem0, beta, thr, ctx.surrogate, ctx.reset)
        need = ctx.needs_input_grad
        return (dx if need[0] else None, dbeta if need[1] else None, dthr if need[2] else None,
                dmem0 if need[3] else None, None, None, None)


# ---------------------------------------------------------------------------------------------------
# Synaptic (second order)
# ---------------------------------------------------------------------------------------------------
def synaptic_forward_torch(x, alpha, beta, thr, syn0, mem0, reset):
    spk, syn, mem = torch.empty_like(x), torch.empty_like(x), torch.empty_like(x)
    ps, pm = syn0, mem0
    for t in range(x.shape[0]):
        r = _heaviside(pm - thr)
        cur = torch.add(alpha * ps, x[t], out=syn[t])
        base = beta * pm + cur
        if reset == "subtract":
            base = base - r * thr
        elif reset == "zero":
            base = base - base * r
        mem[t] = base
        torch.gt(mem[t], thr, out=spk[t])
        ps, pm = syn[t], mem[t]
    return spk, syn, mem


def synaptic_backward_torch(gs, gsyn, gm, syn, mem, syn0, mem0, alpha, beta, thr, surrogate, reset):
    T = mem.shape[0]
    dx = torch.empty_like(mem)
    dalpha, dbeta, dthr = (torch.zeros_like(mem0) for _ in range(3))
    a_next = s_next = None
    for t in range(T - 1, -1, -1):
        u = mem[t] - thr
        ds = gs[t] * surrogate.grad(u) if gs is not None else torch.zeros_like(u)
        adj = ds + gm[t] if gm is not None else ds.clone()
        if a_next is not None:
            carry = beta * a_next
            adj += carry * (1 - _heaviside(u)) if reset == "zero" else carry
        pm, ps = (mem[t - 1], syn[t - 1]) if t else (mem0, syn0)
        r = _heaviside(pm - thr)
        keep = 1 - r if reset == "zero" else torch.ones_like(r)
        sadj = keep * adj
        if gsyn is not None:
            sadj += gsyn[t]
        if s_next is not None:
            sadj += alpha * s_next
        dx[t] = sadj
        dbeta += keep * adj * pm
        dalpha += sadj * ps
        dthr -= ds + adj * r if reset == "subtract" else ds
        a_next, s_next = adj, sadj
        keep0 = keep
    return dx, dalpha, dbeta, dthr, alpha * dx[0], beta * keep0 * a_next


class SynapticSequence(torch.autograd.Function):
    """Second-order neuron over a sequence: (x, alpha, beta, thr, syn0, mem0) → (spikes, syn, mem)."""

    @staticmethod
    def forward(ctx, x, alpha, beta, thr, syn0, mem0, reset: str, surrogate: Surrogate, backend: str):
        ctx.set_materialize_grads(False)
        ctx.reset, ctx.surrogate, ctx.backend = reset, surrogate, backend
        if _use_native(x, backend):
            spk, syn, mem = native.synaptic_forward(x, alpha, beta, thr, syn0, mem0, reset)
        else:
            spk, syn, mem = synaptic_forward_torch(x, alpha, beta, thr, syn0, mem0, reset)
        ctx.save_for_backward(syn, mem, syn0, mem0, alpha, beta, thr)
        return spk, syn, mem

    @staticmethod
    def backward(ctx, gs, gsyn, gm):
        syn, mem, syn0, mem0, alpha, beta, thr = ctx.saved_tensors
        if gs is None and gsyn is None and gm is None:
            return (None,) * 9
        gs, gsyn, gm = (g.contiguous() if g is not None else None for g in (gs, gsyn, gm))
        if _use_native(mem, ctx.backend):
            sg = _surrogate_pre(ctx.surrogate, mem, thr)
            grads = native.synaptic_backward(gs, gsyn, gm, syn, mem, syn0, mem0, alpha, beta, thr, sg,
                                             ctx.surrogate.kind, ctx.surrogate.params, ctx.reset)
        else:
            grads = synaptic_backward_torch(gs, gsyn, gm, syn, mem, syn0, mem0, alpha, beta, thr,
                                            ctx.surrogate, ctx.reset)
        dx, dalpha, dbeta, dthr, dsyn0, dmem0 = grads
        need = ctx.needs_input_grad
        out = (dx, dalpha, dbeta, dthr, dsyn0, dmem0)
        return tuple(g if n else None for g, n in zip(out, need[:6])) + (None, None, None)


# ---------------------------------------------------------------------------------------------------
# No reset: exact parallel form
# ---------------------------------------------------------------------------------------------------
def linear_scan(x: torch.Tensor, decay: torch.Tensor, h0: torch.Tensor | None = None,
                reverse: bool = False) -> torch.Tensor:
    """``y_t = decay · y_{t-1} + x_t`` (``y_{-1} = h0``) for all t at once, along dim 0 of x [T, M].

    ``reverse`` solves the adjoint direction ``y_t = decay · y_{t+1} + x_t`` (``y_T = h0``).
    One decay for all elements (``decay.numel() == 1``): chunked Toeplitz matrix products,
    ``y[chunk] = L x[chunk] + decay^(τ+1) · carry`` with ``L[t, k] = decay^(t-k)`` (k ≤ t) over chunks
    of :data:`SCAN_CHUNK` steps. Per-element decays: Hillis–Steele doubling, ⌈log2 T⌉ passes adding
    the partial sums 2^k steps back weighted by ``decay^(2^k)``. Either way only non-negative powers
    of ``decay`` ∈ [0, 1] appear, so nothing blows up (the cumulative-product form
    ``decay^t · cumsum(x / decay^t)`` does for small decays); results differ from the sequential loop
    only by rounding order.
    """
    if decay.numel() == 1:
        return _toeplitz_scan(x, decay.reshape(()), h0, reverse)
    if reverse:
        return linear_scan(x.flip(0), decay, h0).flip(0)
    y = x.clone()
    if h0 is not None:
        y[0] += decay * h0
    power, k, T = decay, 1, x.shape[0]
    while k < T:
        y[k:] += power * y[:-k]  # the product is a new tensor: reads the old partial sums
        power, k = power * power, 2 * k
    return y


SCAN_CHUNK = 64


def _toeplitz_scan(x: torch.Tensor, decay: torch.Tensor, h0: torch.Tensor | None, reverse: bool) -> torch.Tensor:
    T = x.shape[0]
    c = min(T, SCAN_CHUNK)
    steps = torch.arange(c, device=x.device, dtype=torch.float64)
    lag = steps[:, None] - steps[None, :]
    d = decay.to(torch.float64)
    table = torch.where(lag >= 0, d ** lag.clamp_min(0), torch.zeros((), dtype=torch.float64, device=x.device))
    if reverse:
        table = table.T
    table, carry_gain = table.to(x.dtype), (d ** (steps + 1)).to(x.dtype)  # carry_gain[τ] = decay^(τ+1)
    flat = x.reshape(T, -1)
    y = torch.empty_like(flat)
    carry = None if h0 is None else h0.reshape(-1)
    starts = range(0, T, c) if not reverse else reversed(range(0, T, c))
    for s in starts:
        n = min(c, T - s)
        if not reverse:
            out = torch.mm(table[:n, :n], flat[s:s + n], out=y[s:s + n])
            if carry is not None:
                out.addr_(carry_gain[:n], carry)
            carry = out[-1]
        else:
            out = torch.mm(table[c - n:, c - n:], flat[s:s + n], out=y[s:s + n])
            if carry is not None:
                out.addr_(carry_gain[:n].flip(0), carry)
            carry = out[0]
    return y.view_as(x)


class ParallelLeaky(torch.autograd.Function):
    """Leaky neuron without reset, solved as a parallel linear recurrence (and its reverse).
    ``beta`` is [M] or [1] (one decay for all: the matrix-product scan)."""

    @staticmethod
    def forward(ctx, x, beta, thr, mem0, surrogate: Surrogate):
        ctx.set_materialize_grads(False)
        ctx.surrogate = surrogate
        mem = linear_scan(x, beta, mem0)
        ctx.save_for_backward(mem, beta, thr, mem0)
        return _heaviside(mem - thr), mem

    @staticmethod
    def backward(ctx, gs, gm):
        mem, beta, thr, mem0 = ctx.saved_tensors
        ds = gs * ctx.surrogate.grad(mem - thr) if gs is not None else None
        direct = ds if gm is None else (gm if ds is None else gm + ds)
        if direct is None:
            return None, None, None, None, None
        adj = linear_scan(direct, beta, reverse=True)
        need = ctx.needs_input_grad
        dbeta = None
        if need[1]:
            dbeta = ((adj[1:] * mem[:-1]).sum(0) + adj[0] * mem0).sum_to_size(beta.shape)
        dthr = -ds.sum(0) if need[2] and ds is not None else None
        return adj, dbeta, dthr, beta * adj[0] if need[3] else None, None


class ParallelSynaptic(torch.autograd.Function):
    """Synaptic neuron without reset: two chained parallel linear recurrences."""

    @staticmethod
    def forward(ctx, x, alpha, beta, thr, syn0, mem0, surrogate: Surrogate):
        ctx.set_materialize_grads(False)
        ctx.surrogate = surrogate
        syn = linear_scan(x, alpha, syn0)
        mem = linear_scan(syn, beta, mem0)
        ctx.save_for_backward(syn, mem, alpha, beta, thr, syn0, mem0)
        return _heaviside(mem - thr), syn, mem

    @staticmethod
    def backward(ctx, gs, gsyn, gm):
        syn, mem, alpha, beta, thr, syn0, mem0 = ctx.saved_tensors
        ds = gs * ctx.surrogate.grad(mem - thr) if gs is not None else torch.zeros_like(mem)
        direct = ds if gm is None else gm + ds
        adj = linear_scan(direct, beta, reverse=True)           # dL/dmem_t
        sdirect = adj if gsyn is None else adj + gsyn
        sadj = linear_scan(sdirect, alpha, reverse=True)        # dL/dsyn_t
        need = ctx.needs_input_grad
        dalpha = ((sadj[1:] * syn[:-1]).sum(0) + sadj[0] * syn0).sum_to_size(alpha.shape) if need[1] else None
        dbeta = ((adj[1:] * mem[:-1]).sum(0) + adj[0] * mem0).sum_to_size(beta.shape) if need[2] else None
        dthr = -ds.sum(0) if need[3] else None
        return (sadj, dalpha, dbeta, dthr, alpha * sadj[0] if need[4] else None,
                beta * adj[0] if need[5] else None, None)


__all__ = ["LeakySequence", "SynapticSequence", "ParallelLeaky", "ParallelSynaptic", "linear_scan",
           "leaky_forward_torch", "synaptic_forward_torch"]
