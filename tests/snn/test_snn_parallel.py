"""The exact parallel (non-iterative) form of the no-reset neuron equals the step loop, also for
long sequences and decays near 0 and 1 where a cumulative-product formulation would overflow."""
from __future__ import annotations

import pytest
import torch

from cogsim.snn import lif_sequence, synaptic_sequence
from cogsim.snn.fused import linear_scan


def _loop(x, decay, h0):
    ys, h = [], h0
    for t in range(x.shape[0]):
        h = decay * h + x[t]
        ys.append(h)
    return torch.stack(ys)


@pytest.mark.parametrize("T", [1, 2, 7, 64, 300])
@pytest.mark.parametrize("decay", [0.0, 0.05, 0.5, 0.97, 1.0, "per_element"])
def test_linear_scan_equals_the_loop(T, decay):
    gen = torch.Generator().manual_seed(T)
    x = torch.randn(T, 4, 33, generator=gen)
    d = torch.rand(4, 33, generator=gen) if decay == "per_element" else torch.tensor(float(decay))
    h0 = torch.randn(4, 33, generator=gen)
    exact = _loop(x.double(), d.double(), h0.double())
    got = linear_scan(x, d, h0)
    assert torch.isfinite(got).all()
    scale = exact.abs().max()
    assert (got.double() - exact).abs().max() <= 2e-6 * scale * max(1.0, T ** 0.5)
    back = linear_scan(x, d, reverse=True)  # the adjoint direction: y_t = d·y_{t+1} + x_t
    assert torch.allclose(back, _loop(x.flip(0), d, torch.zeros(4, 33)).flip(0), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("beta", [0.1, 0.999])
def test_parallel_leaky_equals_the_loop_over_300_steps(beta):
    gen = torch.Generator().manual_seed(1)
    x = (torch.randn(300, 4, 16, generator=gen) * 0.5 + 0.1).requires_grad_(True)
    g1, g2 = torch.randn(300, 4, 16, generator=gen), torch.randn(300, 4, 16, generator=gen)
    b = torch.full((16,), beta, requires_grad=True)
    grads = []
    outs = []
    for backend in ("loop", "parallel"):
        spk, mem = lif_sequence(x, beta=b, threshold=1.0, reset="none", fused=backend)
        torch.autograd.backward([spk, mem], [g1, g2])
        outs.append((spk, mem))
        grads.append((x.grad.clone(), b.grad.clone()))
        x.grad = b.grad = None
    (s_ref, m_ref), (s, m) = outs
    scale = m_ref.abs().max()
    assert (m - m_ref).abs().max() <= 1e-5 * scale
    clear = (m_ref - 1.0).abs() > 1e-4 * scale  # away from the threshold, rounding cannot flip a spike
    assert torch.equal(s[clear], s_ref[clear]) and clear.float().mean() > 0.99
    for got, ref in zip(grads[1], grads[0]):
        assert (got - ref).abs().max() <= 1e-4 * ref.abs().max()


def test_parallel_synaptic_equals_the_loop():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(120, 4, 16, generator=gen).requires_grad_(True)
    ref = synaptic_sequence(x, alpha=0.8, beta=0.95, reset="none", fused="loop")
    got = synaptic_sequence(x, alpha=0.8, beta=0.95, reset="none", fused="parallel")
    for r, g in zip(ref[1:], got[1:]):
        assert (r - g).abs().max() <= 1e-5 * r.abs().max()
    gr = torch.autograd.grad(ref[2].square().sum(), x)[0]
    gp = torch.autograd.grad(got[2].square().sum(), x)[0]
    assert (gr - gp).abs().max() <= 1e-4 * gr.abs().max()


def test_parallel_needs_reset_none():
    with pytest.raises(ValueError, match="reset='none'"):
        lif_sequence(torch.zeros(3, 2), beta=0.9, reset="subtract", fused="parallel")
