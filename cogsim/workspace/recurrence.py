"""The causal slot recurrence ``h_t = a_t · h_{t-1} + b_t`` with a scalar decay per row, solved in
parallel over positions (chunked matrix form, recursive over chunks) instead of a loop over t.

Every exponential is of a sum of log-decays over a contiguous range (≤ 0), so nothing overflows
for any sequence length; the loop version is the reference the tests compare against.
"""
from __future__ import annotations

import torch

#: default chunk length: intra-chunk work is O(T·C·d), the chunk-level recurrence O((T/C)²·d).
DEFAULT_CHUNK = 32


def linear_scan_loop(log_a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None = None,
                     scale: torch.Tensor | None = None) -> torch.Tensor:
    """Reference: ``h_t = exp(log_a_t) · h_{t-1} + s_t · b_t`` step by step. Shapes: log_a [N, T],
    b [N, T, d], h0 [N, d] (zeros when None), scale s [N, T] (ones when None) → h [N, T, d]."""
    h = torch.zeros_like(b[:, 0]) if h0 is None else h0
    out = []
    for t in range(b.shape[1]):
        bt = b[:, t] if scale is None else scale[:, t, None] * b[:, t]
        h = log_a[:, t, None].exp() * h + bt
        out.append(h)
    return torch.stack(out, 1)


def _decay_matrix(log_a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For chunks log_a [..., C]: L[..., t, s] = Π_{s<r≤t} a_r for s ≤ t (else 0), and the
    cumulative log-decay A[..., t] = Σ_{r≤t} log a_r (so exp(A_t) carries the state into t)."""
    cum = log_a.cumsum(-1)
    c = log_a.shape[-1]
    causal = torch.ones(c, c, dtype=torch.bool, device=log_a.device).tril()
    diff = cum[..., :, None] - cum[..., None, :]
    L = torch.where(causal, diff, torch.full_like(diff, float("-inf"))).exp()
    return L, cum


def linear_scan(log_a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None = None,
                chunk: int = DEFAULT_CHUNK, scale: torch.Tensor | None = None) -> torch.Tensor:
    """Solve ``h_t = exp(log_a_t) · h_{t-1} + s_t · b_t`` for all t at once (differentiable).

    log_a [N, T] (≤ 0: log of a decay in (0, 1]), b [N, T, d], h0 [N, d] or None, scale s [N, T]
    or None → h [N, T, d]. The scalar s is folded into the small decay matrix, not into b.
    Positions are cut into chunks of ``chunk``: inside a chunk h = L @ b with the decay matrix L;
    the chunks' end states follow the same recurrence over T/chunk steps, solved recursively.
    Computed in float32 at least (cumulative sums of log-decays need the precision).
    """
    if chunk < 2:
        raise ValueError(f"chunk must be at least 2, got {chunk}")
    dtype = b.dtype
    work = torch.promote_types(dtype, torch.float32)
    log_a, b = log_a.to(work), b.to(work)
    h0 = None if h0 is None else h0.to(work)
    scale = None if scale is None else scale.to(work)
    n, t, d = b.shape
    c = min(chunk, t)
    pad = (-t) % c
    if pad:  # padded steps decay by 1 and add 0; they come after every real position
        log_a = torch.nn.functional.pad(log_a, (0, pad))
        b = torch.nn.functional.pad(b, (0, 0, 0, pad))
        scale = None if scale is None else torch.nn.functional.pad(scale, (0, pad))
    nc = (t + pad) // c
    L, cum = _decay_matrix(log_a.view(n, nc, c))
    if scale is not None:
        L = L * scale.view(n, nc, 1, c)
    bc = b.reshape(n, nc, c, d)
    if nc == 1:
        start = None if h0 is None else h0[:, None, None, :]
    else:
        # chunk end states S_c = exp(Λ_c) S_{c-1} + (L @ b)_last: the same problem, T/chunk long
        ends = linear_scan(cum[..., -1], (L[..., -1:, :] @ bc).squeeze(2), h0, chunk)
        first = torch.zeros_like(ends[:, :1]) if h0 is None else h0[:, None]
        start = torch.cat([first, ends[:, :-1]], 1)[:, :, None, :]  # state entering each chunk
    if start is None:
        h = L @ bc
    else:  # the carried-in state is one more column of the decay matrix: a single product
        h = torch.cat([cum.exp()[..., None], L], -1) @ torch.cat([start, bc], 2)
    h = h.view(n, nc * c, d)
    return (h[:, :t] if pad else h).to(dtype)


__all__ = ["linear_scan", "linear_scan_loop", "DEFAULT_CHUNK"]
