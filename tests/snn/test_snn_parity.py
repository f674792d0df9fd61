"""cogsim's neurons against snntorch's own, stepped from an explicit state: spikes equal, membranes
(and synaptic currents) equal, gradients w.r.t. input, decay, threshold and initial state to float
tolerance — for every reset mode, scalar and per-neuron parameters, and every implementation."""
from __future__ import annotations

import zlib

import pytest
import snntorch
import torch
from snntorch import surrogate as snn_surrogate

from cogsim.snn import lif_sequence, synaptic_sequence
from cogsim.snn import native

RESETS = ["subtract", "zero", "none"]
T, B, N = 24, 6, 10


def _close(a: torch.Tensor, b: torch.Tensor, rel: float = 2e-5) -> None:
    """Equal up to float32 rounding of reordered sums: relative to the tensor's scale."""
    scale = b.abs().max().clamp_min(1e-6)
    assert (a - b).abs().max() <= rel * scale, f"max diff {(a - b).abs().max():.3e}, scale {scale:.3e}"


def _params(form: str, gen: torch.Generator):
    if form == "scalar":
        return torch.tensor(0.85), torch.tensor(1.1), torch.tensor(0.7)
    beta = torch.rand(N, generator=gen) * 0.9 + 0.05
    thr = torch.rand(N, generator=gen) * 0.8 + 0.6
    alpha = torch.rand(N, generator=gen) * 0.9 + 0.05
    return beta, thr, alpha


def _inputs(gen: torch.Generator, dtype=torch.float32):
    x = (torch.randn(T, B, N, generator=gen, dtype=dtype) * 0.6 + 0.3).requires_grad_(True)
    grads = [torch.randn(T, B, N, generator=gen, dtype=dtype) for _ in range(3)]
    return x, grads


def _step_leaky(x, neuron, mem):
    spikes, mems = [], []
    for t in range(x.shape[0]):
        spk, mem = neuron(x[t], mem)
        spikes.append(spk)
        mems.append(mem)
    return torch.stack(spikes), torch.stack(mems)


def _backends(reset: str) -> list[str]:
    return ["native", "torch", "loop", "auto"] + (["parallel"] if reset == "none" else [])


@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("form", ["scalar", "per_neuron"])
@pytest.mark.parametrize("learn", [False, True])
def test_leaky_matches_snntorch(reset, form, learn, seed=0):
    gen = torch.Generator().manual_seed(zlib.crc32(f"{reset}{form}{learn}".encode()) + seed)
    beta0, thr0, _ = _params(form, gen)
    x, (g_spk, g_mem, _) = _inputs(gen)
    ref = snntorch.Leaky(beta=beta0.clone(), threshold=thr0.clone(), reset_mechanism=reset,
                         learn_beta=learn, learn_threshold=learn)
    ref_spk, ref_mem = _step_leaky(x, ref, torch.zeros(B, N))
    torch.autograd.backward([ref_spk, ref_mem], [g_spk, g_mem])
    ref_gx, x.grad = x.grad.clone(), None
    assert 0.05 < ref_spk.mean() < 0.95  # the comparison exercises spikes and resets

    for backend in _backends(reset):
        beta = beta0.clone().requires_grad_(learn)
        thr = thr0.clone().requires_grad_(learn)
        spk, mem = lif_sequence(x, beta=beta, threshold=thr, reset=reset, fused=backend)
        assert torch.equal(spk, ref_spk), backend
        if backend == "parallel":  # same sums in another order
            _close(mem, ref_mem, 1e-6)
        else:
            assert torch.equal(mem, ref_mem), backend
        torch.autograd.backward([spk, mem], [g_spk, g_mem])
        _close(x.grad, ref_gx)
        x.grad = None
        if learn:  # sums over all steps and samples: compared at 1e-4 of their scale
            _close(beta.grad, ref.beta.grad, 1e-4)
            _close(thr.grad, ref.threshold.grad, 1e-4)


@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("form", ["scalar", "per_neuron"])
def test_synaptic_matches_snntorch(reset, form, seed=0):
    gen = torch.Generator().manual_seed(zlib.crc32(f"{reset}{form}syn".encode()) + seed)
    beta0, thr0, alpha0 = _params(form, gen)
    x, grads = _inputs(gen)
    with torch.no_grad():
        x.mul_(0.6).sub_(0.1)
    ref = snntorch.Synaptic(alpha=alpha0.clone(), beta=beta0.clone(), threshold=thr0.clone(), reset_mechanism=reset,
                            learn_alpha=True, learn_beta=True, learn_threshold=True)
    syn, mem, outs = torch.zeros(B, N), torch.zeros(B, N), []
    for t in range(T):
        spk, syn, mem = ref(x[t], syn, mem)
        outs.append((spk, syn, mem))
    ref_spk, ref_syn, ref_mem = (torch.stack(z) for z in zip(*outs))
    torch.autograd.backward([ref_spk, ref_syn, ref_mem], grads)
    ref_gx, x.grad = x.grad.clone(), None
    assert 0.05 < ref_spk.mean() < 0.95

    for backend in _backends(reset):
        alpha, beta, thr = (p.clone().requires_grad_(True) for p in (alpha0, beta0, thr0))
        spk, syn, mem = synaptic_sequence(x, alpha=alpha, beta=beta, threshold=thr, reset=reset, fused=backend)
        assert torch.equal(spk, ref_spk), backend
        if backend == "parallel":
            _close(syn, ref_syn, 1e-6)
            _close(mem, ref_mem, 1e-6)
        else:
            assert torch.equal(syn, ref_syn) and torch.equal(mem, ref_mem), backend
        torch.autograd.backward([spk, syn, mem], grads)
        _close(x.grad, ref_gx)
        x.grad = None
        _close(alpha.grad, ref.alpha.grad, 1e-4)
        _close(beta.grad, ref.beta.grad, 1e-4)
        _close(thr.grad, ref.threshold.grad, 1e-4)


@pytest.mark.parametrize("name,ours,theirs", [
    ("atan3", "atan(alpha=3)", snn_surrogate.atan(alpha=3.0)),
    ("fast_sigmoid", "fast_sigmoid(slope=25)", snn_surrogate.fast_sigmoid(slope=25)),
    ("sigmoid", "sigmoid(slope=5)", snn_surrogate.sigmoid(slope=5)),
    ("triangular", "triangular", snn_surrogate.triangular()),
    ("straight_through", "straight_through", snn_surrogate.straight_through_estimator()),
    ("spike_rate_escape", "spike_rate_escape(beta=1, slope=25)", snn_surrogate.spike_rate_escape()),
    ("sparse_fast_sigmoid", "sparse_fast_sigmoid(slope=25, B=0.2)", snn_surrogate.SFS(slope=25, B=0.2)),
    ("snntorch_callable", snn_surrogate.fast_sigmoid(slope=10), snn_surrogate.fast_sigmoid(slope=10)),
])
@pytest.mark.parametrize("backend", ["native", "torch", "loop"])
def test_surrogates_match_snntorch(name, ours, theirs, backend):
    gen = torch.Generator().manual_seed(7)
    x, (g_spk, g_mem, _) = _inputs(gen)
    ref = snntorch.Leaky(beta=0.8, spike_grad=theirs, learn_threshold=True)
    ref_spk, ref_mem = _step_leaky(x, ref, torch.zeros(B, N))
    torch.autograd.backward([ref_spk, ref_mem], [g_spk, g_mem])
    ref_gx, x.grad = x.grad.clone(), None
    thr = torch.tensor(1.0, requires_grad=True)
    spk, mem = lif_sequence(x, beta=0.8, threshold=thr, surrogate=ours, fused=backend)
    assert torch.equal(spk, ref_spk) and torch.equal(mem, ref_mem)
    torch.autograd.backward([spk, mem], [g_spk, g_mem])
    _close(x.grad, ref_gx, 1e-5)
    _close(thr.grad, ref.threshold.grad, 1e-5)


@pytest.mark.parametrize("reset", RESETS)
def test_initial_state_and_float64(reset):
    """A given membrane (e.g. carried from an earlier chunk, even above threshold) continues exactly
    as snntorch does when passed ``mem``; gradients reach it. Also in float64 (snntorch's spikes are
    float32 there, so their upstream gradient is made float32-exact to compare at float64 precision)."""
    gen = torch.Generator().manual_seed(3)
    x, (g_spk, g_mem, _) = _inputs(gen, torch.float64)
    g_spk = g_spk.float().double()
    mem0 = (torch.randn(B, N, generator=gen, dtype=torch.float64) + 0.8).requires_grad_(True)
    ref = snntorch.Leaky(beta=0.9, reset_mechanism=reset)
    ref_spk, ref_mem = _step_leaky(x, ref, mem0)
    torch.autograd.backward([ref_spk, ref_mem], [g_spk, g_mem])
    ref_gx, ref_gm0 = x.grad.clone(), mem0.grad.clone()
    for backend in _backends(reset):
        x.grad = mem0.grad = None
        spk, mem = lif_sequence(x, beta=0.9, reset=reset, mem0=mem0, fused=backend)
        assert spk.dtype == torch.float64 and torch.equal(spk.float(), ref_spk.float()), backend
        _close(mem, ref_mem, 1e-14)
        torch.autograd.backward([spk, mem], [g_spk, g_mem])
        _close(x.grad, ref_gx, 1e-12)
        _close(mem0.grad, ref_gm0, 1e-12)


def test_beta_is_clamped_and_graded_spikes_scale():
    gen = torch.Generator().manual_seed(5)
    x, _ = _inputs(gen)
    beta = torch.tensor([1.3] * 5 + [-0.2] * 5, requires_grad=True)  # clamp(0, 1) as snntorch
    ref = snntorch.Leaky(beta=beta.detach().clone(), graded_spikes_factor=0.5)
    ref_spk, ref_mem = _step_leaky(x, ref, torch.zeros(B, N))
    spk, mem = lif_sequence(x, beta=beta, graded_spikes_factor=0.5)
    assert torch.equal(spk, ref_spk) and torch.equal(mem, ref_mem)
    mem.sum().backward()
    assert torch.equal(beta.grad, torch.zeros(N))  # clamped outside [0, 1]: no gradient, like torch.clamp


def test_native_kernels_are_used_here():
    """On this CPU the default path is the native kernel (the speed claim depends on it)."""
    assert native.library() is not None, native.status()
    from cogsim.snn.lif import resolve_backend
    assert resolve_backend(True, torch.zeros(2, 3), "subtract") == "native"
