"""The Engram fusion layer: shapes, zero-initialised conv, and the formula recomputed plainly."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cogsim.engram.layer import EngramFusion, ShortConv


def plain_fusion(f: EngramFusion, e: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """The reference's loops over branches with nn.RMSNorm, nn.Linear and a symmetrically padded
    nn.Conv1d truncated to T, written independently of the vectorised layer."""
    B, T, _ = e.shape
    M, C = f.branches, f.group
    value = f.value_proj(e)
    outs = []
    for m in range(M):
        if f.use_gate:
            key_proj = nn.Linear(f.memory_dim, C)
            key_proj.weight.data = f.key_proj.weight.data[m * C:(m + 1) * C]
            key_proj.bias.data = f.key_proj.bias.data[m * C:(m + 1) * C]
            n1, n2 = nn.RMSNorm(C), nn.RMSNorm(C)
            n1.weight.data, n2.weight.data = f.key_norm_weight.data[m], f.query_norm_weight.data[m]
            g = (n1(key_proj(e)) * n2(h[..., m * C:(m + 1) * C])).sum(-1) / math.sqrt(C)
            g = g.abs().clamp_min(1e-6).sqrt() * g.sign()
            outs.append(g.sigmoid().unsqueeze(-1) * value)
        else:
            outs.append(value)
    v = torch.stack(outs, dim=2)  # [B, T, M, C]
    if f.short_conv is None:
        return v.reshape(B, T, M * C)
    sc = f.short_conv
    normed = []
    for m in range(M):
        norm = nn.RMSNorm(C, eps=1e-5)
        norm.weight.data = sc.norm_weight.data[m]
        normed.append(norm(v[:, :, m]))
    conv = nn.Conv1d(M * C, M * C, sc.kernel_size, groups=M * C, bias=False,
                     padding=(sc.kernel_size - 1) * sc.dilation, dilation=sc.dilation)
    conv.weight.data = sc.weight.data
    y = conv(torch.cat(normed, -1).transpose(1, 2))[..., :T]
    y = nn.functional.silu(y).transpose(1, 2).reshape(B, T, M, C)
    return (v + y).reshape(B, T, M * C)


def _randomise(module: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)


def test_shapes_and_zero_initialised_conv():
    f = EngramFusion(memory_dim=24, d_model=32, branches=4, kernel_size=4, dilation=3)
    assert f.value_proj.weight.shape == (8, 24)
    assert f.key_proj.weight.shape == (32, 24)
    assert f.short_conv.weight.shape == (32, 1, 4)
    assert torch.count_nonzero(f.short_conv.weight) == 0
    e, h = torch.randn(2, 11, 24), torch.randn(2, 11, 32)
    out, gates = f(e, h)
    assert out.shape == (2, 11, 32) and gates.shape == (2, 11, 4)
    assert ((gates > 0) & (gates < 1)).all()
    # zero conv: SiLU(0) = 0, so the output is exactly the gated value
    v = gates.unsqueeze(-1) * f.value_proj(e).unsqueeze(2)
    assert torch.equal(out, v.reshape(2, 11, 32))
    assert torch.count_nonzero(f.short_conv(v)) == 0


@pytest.mark.parametrize("branches,gate,conv", [(1, True, True), (4, True, True), (2, False, True), (2, True, False)])
def test_output_equals_plain_recomputation(branches, gate, conv):
    torch.manual_seed(1)
    f = EngramFusion(memory_dim=20, d_model=16, branches=branches, kernel_size=4, dilation=3, gate=gate, conv=conv)
    _randomise(f)
    e, h = torch.randn(3, 13, 20), torch.randn(3, 13, 16)
    out, _ = f(e, h)
    torch.testing.assert_close(out, plain_fusion(f, e, h), rtol=1e-5, atol=1e-5)


def test_gate_off_is_one_and_signed_sqrt_sign():
    f = EngramFusion(memory_dim=8, d_model=8, branches=2, gate=False)
    _, gates = f(torch.randn(1, 5, 8), torch.randn(1, 5, 8))
    assert torch.equal(gates, torch.ones(1, 5, 2))
    g = EngramFusion(memory_dim=8, d_model=8, branches=1)
    e, h = torch.randn(2, 30, 8), torch.randn(2, 30, 8)
    _, gates = g(e, h)
    # the gate is above 1/2 exactly where the key·query product is positive
    key = nn.functional.rms_norm(g.key_proj(e), (8,))
    dot = (key * nn.functional.rms_norm(h, (8,), eps=torch.finfo(h.dtype).eps)).sum(-1)
    assert torch.equal(gates[..., 0] > 0.5, dot > 0)


def test_short_conv_is_causal_with_dilation():
    torch.manual_seed(0)
    sc = ShortConv(channels=4, branches=2, kernel_size=4, dilation=3)
    with torch.no_grad():
        sc.weight.normal_()
    assert sc.receptive_field == 10
    x = torch.randn(1, 20, 2, 4)
    y = sc(x)
    x2 = x.clone()
    x2[:, 12:] = torch.randn(1, 8, 2, 4)
    y2 = sc(x2)
    assert torch.equal(y[:, :12], y2[:, :12])
    assert not torch.equal(y[:, 12:], y2[:, 12:])
    # an input at t reaches t + 9 but not t + 10 (kernel 4, dilation 3)
    x3 = x.clone()
    x3[:, 5] += 1.0
    changed = (sc(x3) != y).any(-1).any(-1)[0]
    assert changed[5] and changed[14] and not changed[15] and not changed[:5].any()


def test_indivisible_branches_rejected():
    with pytest.raises(ValueError, match="branches"):
        EngramFusion(memory_dim=8, d_model=10, branches=3)
