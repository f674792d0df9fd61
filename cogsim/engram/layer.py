"""The Engram fusion layer (docs/design.md §5.1): context-aware gate, shared value projection, short conv.

The reference's M hyper-connection streams become M groups of channels of the one residual stream;
its loops over branches are vectorised (one block linear map, [M, d/M] norm weights, one depthwise
conv over all channels).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float | None) -> torch.Tensor:
    """RMSNorm over the last dim with a per-branch weight broadcast from the left (``nn.RMSNorm``
    semantics: ``eps=None`` means the dtype's machine epsilon)."""
    eps = torch.finfo(x.dtype).eps if eps is None else eps
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def signed_sqrt(g: torch.Tensor) -> torch.Tensor:
    """``sign(g) · sqrt(max(|g|, 1e-6))``: keeps the gate's sign, compresses its magnitude."""
    return g.abs().clamp_min(1e-6).sqrt() * g.sign()


class ShortConv(nn.Module):
    """Per-branch RMSNorm → depthwise causal Conv1d (kernel ``k``, dilation ``dilation``) → SiLU.

    The conv weight starts at zero (as in the paper), so the layer starts as the identity path.
    Input and output are [B, T, M, C].
    """

    def __init__(self, channels: int, branches: int, kernel_size: int = 4, dilation: int = 1,
                 norm_eps: float = 1e-5) -> None:
        super().__init__()
        self.channels, self.branches = channels, branches
        self.kernel_size, self.dilation, self.norm_eps = kernel_size, dilation, norm_eps
        total = channels * branches
        self.norm_weight = nn.Parameter(torch.ones(branches, channels))
        self.weight = nn.Parameter(torch.zeros(total, 1, kernel_size))  # depthwise, no bias

    @property
    def receptive_field(self) -> int:
        """How many positions (the current one included) an output can see."""
        return (self.kernel_size - 1) * self.dilation + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, M, C = x.shape
        y = rms_norm(x, self.norm_weight, self.norm_eps).reshape(B, T, M * C).transpose(1, 2)
        y = F.pad(y, ((self.kernel_size - 1) * self.dilation, 0))  # left padding only: causal
        y = F.conv1d(y, self.weight, groups=M * C, dilation=self.dilation)
        return F.silu(y).transpose(1, 2).reshape(B, T, M, C)


class EngramFusion(nn.Module):
    """Gate + value + short conv; maps (e [B,T,E], h [B,T,d]) to the residual delta [B,T,d].

    ``gate=False`` fixes every gate at 1 and ``conv=False`` drops the short conv (the paper's
    ablations). The forward also returns the gate values [B, T, M] for traces.
    """

    def __init__(self, memory_dim: int, d_model: int, branches: int = 1, kernel_size: int = 4,
                 dilation: int = 1, gate: bool = True, conv: bool = True) -> None:
        super().__init__()
        if d_model % branches:
            raise ValueError(f"branches: d_model {d_model} is not divisible by {branches} branches")
        self.memory_dim, self.d_model, self.branches = memory_dim, d_model, branches
        self.group = d_model // branches
        self.use_gate, self.use_conv = gate, conv
        self.value_proj = nn.Linear(memory_dim, self.group)
        if gate:
            self.key_proj = nn.Linear(memory_dim, self.group * branches)  # M key maps, stacked
            self.key_norm_weight = nn.Parameter(torch.ones(branches, self.group))
            self.query_norm_weight = nn.Parameter(torch.ones(branches, self.group))
        self.short_conv = ShortConv(self.group, branches, kernel_size, dilation) if conv else None

    def gates(self, e: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Gate values in (0, 1), shape [B, T, M]."""
        B, T, _ = e.shape
        M, C = self.branches, self.group
        if not self.use_gate:
            return e.new_ones(B, T, M)
        key = rms_norm(self.key_proj(e).view(B, T, M, C), self.key_norm_weight, None)
        query = rms_norm(h.view(B, T, M, C), self.query_norm_weight, None)
        g = (key * query).sum(-1) / math.sqrt(C)
        return torch.sigmoid(signed_sqrt(g))

    def forward(self, e: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (delta [B, T, d], gates [B, T, M])."""
        B, T, _ = e.shape
        gates = self.gates(e, h)
        v = gates.unsqueeze(-1) * self.value_proj(e).unsqueeze(2)  # [B, T, M, C]
        out = v + self.short_conv(v) if self.short_conv is not None else v
        return out.reshape(B, T, self.d_model), gates
