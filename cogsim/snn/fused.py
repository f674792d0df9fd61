"""Whole-sequence LIF / synaptic neurons as single autograd nodes (no autograd graph per step).

Forward runs the recurrence over all T steps, backward the reverse-time adjoint (docs/design.md
§5.3): both in the native kernels on a CPU, or a torch loop forward and a loop-free backward, since
the adjoint is a linear recurrence once the spikes are known. Without reset the forward is linear
too: :class:`ParallelLeaky`. Tensors here are flat (``x [T, M]``, parameters ``[M]``).
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
# Linear recurrences
# ---------------------------------------------------------------------------------------------------
SCAN_CHUNK = 64


def linear_scan(x: torch.Tensor, decay: torch.Tensor, h0: torch.Tensor | None = None,
                reverse: bool = False) -> torch.Tensor:
    """``y_t = decay_t · y_{t-1} + x_t`` (``y_{-1} = h0``) for all t at once, along dim 0 of x [T, M].

    ``decay``: [1] (one for all), [M] (per element) or [T, M] (per step and element). ``reverse``
    solves the adjoint direction ``y_t = decay_t · y_{t+1} + x_t`` (``y_T = h0``).
    One decay for all: chunked Toeplitz matrix products, ``y[chunk] = L x[chunk] + decay^(τ+1)·carry``
    with ``L[t, k] = decay^(t-k)`` (k ≤ t) over chunks of :data:`SCAN_CHUNK` steps. Otherwise
    Hillis–Steele doubling: ⌈log2 T⌉ passes, each adding the partial sums 2^k steps back weighted by
    the product of the decays in between. Only products of decays ∈ [0, 1] appear, so nothing blows
    up (the cumulative-product form ``decay^t · cumsum(x / decay^t)`` does for small decays); results
    differ from the sequential loop only by rounding order.
    """
    if decay.numel() == 1:
        return _toeplitz_scan(x, decay.reshape(()), h0, reverse)
    varying = decay.dim() == x.dim() and decay.shape[0] == x.shape[0] and x.shape[0] > 1
    if reverse:
        return linear_scan(x.flip(0), decay.flip(0) if varying else decay, h0).flip(0)
    y = x.clone()
    if h0 is not None:
        y[0] += (decay[0] if varying else decay) * h0
    power, k, T = (decay.clone() if varying else decay), 1, x.shape[0]
    while k < T:
        if varying:  # element t now spans steps t-2k+1..t: combine with the window ending at t-k
            y[k:] += power[k:] * y[:-k]
            power[k:] = power[k:] * power[:-k]
        else:
            y[k:] += power * y[:-k]  # the product is a new tensor: reads the old partial sums
            power = power * power
        k *= 2
    return y


def _toeplitz_scan(x: torch.Tensor, decay: torch.Tensor, h0: torch.Tensor | None, reverse: bool) -> torch.Tensor:
    T = x.shape[0]
    c = min(T, SCAN_CHUNK)
    steps = torch.arange(c, device=x.device, dtype=torch.float64)
    lag = steps[:, None] - steps[None, :]
    d = decay.detach().to(torch.float64)
    table = torch.where(lag >= 0, d ** lag.clamp_min(0), torch.zeros((), dtype=torch.float64, device=x.device))
    if reverse:
        table = table.T
    table, carry_gain = table.to(x.dtype), (d ** (steps + 1)).to(x.dtype)  # carry_gain[τ] = decay^(τ+1)
    flat = x.reshape(T, -1)
    y = torch.empty_like(flat)
    carry = None if h0 is None else h0.reshape(-1)
    for s in (reversed(range(0, T, c)) if reverse else range(0, T, c)):
        n = min(c, T - s)
        with torch.autocast(x.device.type, enabled=False):  # keep the scan in the state's precision
            out = torch.mm(table[:n, :n], flat[s:s + n], out=y[s:s + n])
        if carry is not None:
            out.addr_(carry_gain[:n].flip(0) if reverse else carry_gain[:n], carry)
        carry = out[0] if reverse else out[-1]
    return y.view_as(x)


def _direct(gs, gm, mem, thr, surrogate):
    """(gspk·σ' or None, gmem + gspk·σ'): the gradient reaching each membrane from its own step;
    the second is a fresh tensor the caller may overwrite."""
    if gs is None:
        return None, gm.clone() if gm is not None else torch.zeros_like(mem)
    ds = surrogate.grad(mem - thr).mul_(gs)
    return ds, ds.clone() if gm is None else gm + ds


def _reverse_recurrence(y, decay, mem=None, thr=None):
    """In place ``y_t += g_t · y_{t+1}`` from the end, with ``g_t = decay`` or, for reset zero (``mem``
    given), ``decay · (mem_t <= thr)`` (no carry across a reset). On CPU a loop over cache-resident
    rows is fastest; elsewhere the doubling scan needs only a few kernel launches."""
    if y.device.type != "cpu":
        g = decay if mem is None else decay * (mem <= thr).to(y.dtype)
        y.copy_(linear_scan(y, g, reverse=True))
        return y
    for t in range(y.shape[0] - 2, -1, -1):
        g = decay if mem is None else decay * (mem[t] <= thr).to(y.dtype)
        y[t].addcmul_(g, y[t + 1])
    return y


def _shifted_sum(a, mem, mem0):
    """Σ_t a_t · mem_{t-1} (with mem_{-1} = mem0), per element."""
    return (a[1:] * mem[:-1]).sum(0) + a[0] * mem0


def _threshold_grad(ds, adj, mem, mem0, thr, reset):
    """dL/dthr = -Σ gspk σ' - [subtract] Σ A_t r_t, per element."""
    dthr = -ds.sum(0) if ds is not None else torch.zeros_like(mem0)
    if reset == "subtract":
        dthr -= _shifted_sum(adj, (mem > thr).to(mem.dtype), (mem0 > thr).to(mem.dtype))
    return dthr


def _reduce(grad, like):
    return None if grad is None else grad.sum_to_size(like.shape)


def leaky_adjoint(gs, gm, mem, mem0, beta, thr, surrogate, reset, need=(True, True, True, True)):
    """Backward of the leaky neuron in torch ops: (dx [T, M], dbeta, dthr, dmem0), each shaped like
    its input; parameter gradients only where ``need`` (x, beta, thr, mem0) asks for them."""
    zero = reset == "zero"
    ds, adj = _direct(gs, gm, mem, thr, surrogate)
    _reverse_recurrence(adj, beta, mem if zero else None, thr)
    keep0 = (mem0 <= thr).to(mem.dtype) if zero else 1
    dbeta = dthr = dmem0 = None
    if need[1]:
        if zero:  # dβ = Σ A_t c_t mem_{t-1}: the part of the old membrane that survived the reset
            dbeta = _shifted_sum(adj, mem * (mem <= thr).to(mem.dtype), mem0 * keep0)
        else:
            dbeta = _shifted_sum(adj, mem, mem0)
    if need[2]:
        dthr = _threshold_grad(ds, adj, mem, mem0, thr, reset)
    if need[3]:
        dmem0 = beta * keep0 * adj[0]
    return adj, _reduce(dbeta, beta), _reduce(dthr, thr), _reduce(dmem0, mem0)


def synaptic_adjoint(gs, gsyn, gm, syn, mem, syn0, mem0, alpha, beta, thr, surrogate, reset,
                     need=(True,) * 6):
    """Backward of the synaptic neuron in torch ops: (dx, dalpha, dbeta, dthr, dsyn0, dmem0)."""
    zero = reset == "zero"
    ds, adj = _direct(gs, gm, mem, thr, surrogate)
    _reverse_recurrence(adj, beta, mem if zero else None, thr)              # dL/dmem_t
    to_syn = adj
    if zero:  # mem_t = c_t (β mem_{t-1} + syn_t): the membrane adjoint passes c_t = 1 - r_t
        to_syn = adj.clone()
        to_syn[1:] *= (mem[:-1] <= thr).to(mem.dtype)
        to_syn[0] *= (mem0 <= thr).to(mem.dtype)
    sadj = to_syn.clone() if gsyn is None else to_syn + gsyn
    _reverse_recurrence(sadj, alpha)                                         # dL/dsyn_t
    grads = [sadj, None, None, None, None, None]
    if need[1]:
        grads[1] = _shifted_sum(sadj, syn, syn0)
    if need[2]:
        grads[2] = _shifted_sum(to_syn, mem, mem0)
    if need[3]:
        grads[3] = _threshold_grad(ds, adj, mem, mem0, thr, reset)
    if need[4]:
        grads[4] = alpha * sadj[0]
    if need[5]:
        grads[5] = beta * (to_syn[0] if zero else adj[0])
    return (sadj, *(_reduce(g, p) for g, p in zip(grads[1:], (alpha, beta, thr, syn0, mem0))))


# ---------------------------------------------------------------------------------------------------
# Leaky (first order)
# ---------------------------------------------------------------------------------------------------
def leaky_forward_torch(x, beta, thr, mem0, reset):
    """snntorch's order of operations in torch ops, no graph. Returns (spikes, mem) [T, M].
    The reset flag of step t is the spike of step t-1 (both are ``H(mem_{t-1} - thr)``)."""
    spk, mem = torch.empty_like(x), torch.empty_like(x)
    prev, r = mem0, _heaviside(mem0 - thr)
    for t in range(x.shape[0]):
        m = mem[t]
        if reset == "zero":
            torch.mul(beta, (1 - r) * prev, out=m)
        else:
            torch.mul(beta, prev, out=m)
        m.add_(x[t])
        if reset == "subtract":
            m.sub_(r * thr)
        torch.gt(m, thr, out=spk[t])
        prev, r = m, spk[t]
    return spk, mem


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
                                                           ctx.surrogate.params, ctx.reset,
                                                           any(ctx.needs_input_grad[1:3]))
        else:
            dx, dbeta, dthr, dmem0 = leaky_adjoint(gs, gm, mem, mem0, beta, thr, ctx.surrogate, ctx.reset,
                                                   ctx.needs_input_grad[:4])
        grads = (dx, dbeta, dthr, dmem0)
        return tuple(g if n else None for g, n in zip(grads, ctx.needs_input_grad[:4])) + (None, None, None)


# ---------------------------------------------------------------------------------------------------
# Synaptic (second order)
# ---------------------------------------------------------------------------------------------------
def synaptic_forward_torch(x, alpha, beta, thr, syn0, mem0, reset):
    """snntorch's order of operations in torch ops, no graph. Returns (spikes, syn, mem) [T, M]."""
    spk, syn, mem = torch.empty_like(x), torch.empty_like(x), torch.empty_like(x)
    ps, pm, r = syn0, mem0, _heaviside(mem0 - thr)
    for t in range(x.shape[0]):
        torch.mul(alpha, ps, out=syn[t]).add_(x[t])
        m = torch.mul(beta, pm, out=mem[t]).add_(syn[t])
        if reset == "subtract":
            m.sub_(r * thr)
        elif reset == "zero":
            m.sub_(m * r)
        torch.gt(m, thr, out=spk[t])
        ps, pm, r = syn[t], m, spk[t]
    return spk, syn, mem


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
                                             ctx.surrogate.kind, ctx.surrogate.params, ctx.reset,
                                             any(ctx.needs_input_grad[1:4]))
        else:
            grads = synaptic_adjoint(gs, gsyn, gm, syn, mem, syn0, mem0, alpha, beta, thr, ctx.surrogate,
                                     ctx.reset, ctx.needs_input_grad[:6])
        return tuple(g if n else None for g, n in zip(grads, ctx.needs_input_grad[:6])) + (None, None, None)


# ---------------------------------------------------------------------------------------------------
# No reset: exact parallel form
# ---------------------------------------------------------------------------------------------------
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
        if gs is None and gm is None:
            return None, None, None, None, None
        grads = leaky_adjoint(gs, gm, mem, mem0, beta, thr, ctx.surrogate, "none", ctx.needs_input_grad[:4])
        return tuple(g if n else None for g, n in zip(grads, ctx.needs_input_grad)) + (None,)


class ParallelSynaptic(torch.autograd.Function):
    """Synaptic neuron without reset: two chained parallel linear recurrences."""

    @staticmethod
    def forward(ctx, x, alpha, beta, thr, syn0, mem0, surrogate: Surrogate):
        ctx.set_materialize_grads(False)
        ctx.surrogate = surrogate
        syn = linear_scan(x, alpha, syn0)
        mem = linear_scan(syn, beta, mem0)
        ctx.save_for_backward(syn, mem, syn0, mem0, alpha, beta, thr)
        return _heaviside(mem - thr), syn, mem

    @staticmethod
    def backward(ctx, gs, gsyn, gm):
        syn, mem, syn0, mem0, alpha, beta, thr = ctx.saved_tensors
        if gs is None and gsyn is None and gm is None:
            return (None,) * 7
        grads = synaptic_adjoint(gs, gsyn, gm, syn, mem, syn0, mem0, alpha, beta, thr, ctx.surrogate, "none",
                                 ctx.needs_input_grad[:6])
        return tuple(g if n else None for g, n in zip(grads, ctx.needs_input_grad)) + (None,)


__all__ = ["LeakySequence", "SynapticSequence", "ParallelLeaky", "ParallelSynaptic", "linear_scan",
           "leaky_adjoint", "synaptic_adjoint", "leaky_forward_torch", "synaptic_forward_torch"]
