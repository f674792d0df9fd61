"""The parallel slot scan equals the step-by-step recurrence, values and gradients, for any length."""
import pytest
import torch
import torch.nn.functional as F

from cogsim.workspace.recurrence import linear_scan, linear_scan_loop


def _inputs(n, t, d, dtype=torch.float64, decay_spread=4.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    log_a = F.logsigmoid(torch.randn(n, t, generator=g, dtype=dtype) * decay_spread + 1)
    b = torch.randn(n, t, d, generator=g, dtype=dtype)
    h0 = torch.randn(n, d, generator=g, dtype=dtype)
    scale = torch.rand(n, t, generator=g, dtype=dtype)
    return log_a, b, h0, scale


@pytest.mark.parametrize("t,chunk", [(1, 4), (7, 4), (8, 4), (9, 4), (45, 8), (130, 16), (1024, 32)])
def test_scan_equals_loop(t, chunk):
    log_a, b, h0, scale = _inputs(3, t, 5)
    ref = linear_scan_loop(log_a, b, h0, scale)
    assert torch.allclose(linear_scan(log_a, b, h0, chunk, scale=scale), ref, atol=1e-12, rtol=1e-10)
    ref0 = linear_scan_loop(log_a, b)  # no initial state, no scale
    assert torch.allclose(linear_scan(log_a, b, None, chunk), ref0, atol=1e-12, rtol=1e-10)


def test_scan_gradients_equal_loop():
    leaves = [x.requires_grad_() for x in _inputs(2, 37, 3)]
    w = torch.randn(2, 37, 3, dtype=torch.float64)
    g_loop = torch.autograd.grad((linear_scan_loop(*leaves) * w).sum(), leaves)
    g_scan = torch.autograd.grad((linear_scan(*leaves[:3], chunk=8, scale=leaves[3]) * w).sum(), leaves)
    for a, b in zip(g_loop, g_scan):
        assert torch.allclose(a, b, atol=1e-10, rtol=1e-8)


def test_scan_float32_stable_long_sequences():
    """Very strong and very weak forgetting over 1024 positions: no overflow, float32 ≈ float64."""
    log_a, b, h0, scale = _inputs(4, 1024, 6, decay_spread=12.0, seed=1)
    log_a[0] = -30.0  # forgets everything at once
    log_a[1] = -1e-7  # remembers (almost) everything
    ref = linear_scan_loop(log_a, b, h0, scale)
    out = linear_scan(log_a.float(), b.float(), h0.float(), 32, scale=scale.float())
    assert torch.isfinite(out).all()
    assert torch.allclose(out.double(), ref, atol=2e-3 * ref.abs().max().item(), rtol=1e-3)


def test_scan_keeps_dtype_and_is_causal():
    log_a, b, h0, _ = _inputs(2, 50, 4, dtype=torch.float32)
    out = linear_scan(log_a, b.bfloat16(), h0, 16)
    assert out.dtype == torch.bfloat16
    b2 = b.clone()
    b2[:, 30:] += 100.0
    log_a2 = log_a.clone()
    log_a2[:, 30:] = -5.0
    a, c = linear_scan(log_a, b, h0, 16), linear_scan(log_a2, b2, h0, 16)
    assert torch.equal(a[:, :30], c[:, :30])
    assert not torch.allclose(a[:, 30:], c[:, 30:])


def test_scan_rejects_tiny_chunk():
    log_a, b, h0, _ = _inputs(1, 5, 2)
    with pytest.raises(ValueError, match="chunk"):
        linear_scan(log_a, b, h0, 1)
