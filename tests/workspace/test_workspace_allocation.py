"""Allocated writes (``addressing: allocate``): a write gate per position moves a slot pointer and
each write lands in the slot under it, so K slots hold the last K items in order (a ring buffer);
and the keyed read-out (``read: keyed``)."""
import math

import pytest
import torch

from cogsim.component import Context, Sizes
from cogsim.trace import Recorder
from cogsim.workspace import WorkspaceComponent, WorkspaceParams
from cogsim.workspace.component import slot_weights

D, T, K, DK, DS = 32, 14, 3, 8, 16
SIZES = Sizes(d_model=D, n_heads=4, seq_len=T, vocab_size=50)


def wired(read: str = "keyed", gate_gain: float = 40.0, pointer_grad: bool = False,
          pair_previous: bool = False) -> WorkspaceComponent:
    """One candidate; its dimension 0 drives the write gate (bias −20: closed unless it is 1)."""
    torch.manual_seed(0)
    ws = WorkspaceComponent(WorkspaceParams(slots=K, top_k=1, d_key=DK, d_slot=DS, input_bias=-20.0,
                                            addressing="allocate", read=read, chunk=4,
                                            pointer_grad=pointer_grad, pair_previous=pair_previous), SIZES)
    with torch.no_grad():
        w = torch.randn_like(ws.cand_proj.weight)
        w[DK] = 0.0
        w[DK, 0] = gate_gain
        ws.cand_proj.weight.copy_(w)
    return ws


def candidates(writes: list[int], b: int = 1) -> torch.Tensor:
    torch.manual_seed(1)
    c = torch.randn(b, T, D)
    c[:, :, 0] = 0.0
    c[:, writes, 0] = 1.0  # the gate opens here
    return c


def run(ws, c, x=None):
    ctx = Context(recorder=Recorder(batch=None), node="ws")
    x = torch.randn(c.shape[0], T, D, generator=torch.Generator().manual_seed(2)) if x is None else x
    out = ws({"x": x, "candidates": [c]}, ctx)["out"]
    return out, ctx.recorder.traces["ws"]


def test_slot_weights_select_the_slot_under_the_pointer():
    w = slot_weights(torch.tensor([0.0, 1.0, 3.0, 4.0, 2.5, 3.75]), 3)
    assert torch.allclose(w[:4], torch.tensor([[1.0, 0, 0], [0, 1, 0], [1, 0, 0], [0, 1, 0]]))
    assert torch.allclose(w[4], torch.tensor([0.5, 0, 0.5]))  # between slot 2 and slot 0 (= 3)
    assert torch.allclose(w[5], torch.tensor([0.25, 0.75, 0]))
    assert torch.allclose(w.sum(-1), torch.ones(6))
    assert torch.equal(slot_weights(torch.tensor([0.3, 7.0]), 1), torch.ones(2, 1))


def test_k_plus_one_writes_fill_the_slots_in_order_and_overwrite_the_oldest():
    writes = [2, 5, 6, 10]  # K + 1 = 4 writes
    _, traces = run(wired(), candidates(writes))
    a = traces["write_gate"][0]  # [T, K]: the share of each slot overwritten at t
    for n, t in enumerate(writes):
        assert a[t, n % K] > 0.999 and a[t].sum() - a[t, n % K] < 1e-5
    others = [t for t in range(T) if t not in writes]
    assert a[others].max() < 1e-5
    # the 4th write went over the 1st item's slot: the slot last written at position 10 is slot 0
    assert int((a[:, 0] > 0.5).nonzero().max()) == 10 and int((a[:, 1] > 0.5).nonzero().max()) == 5


def reference(ws: WorkspaceComponent, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """The allocated workspace with one candidate and the keyed read, step by step over positions."""
    p = ws.params
    rho = (c.square().mean(-1, keepdim=True) + 1e-6).sqrt()
    proj = ws.cand_proj(c / rho)
    gate = torch.sigmoid(proj[..., DK] + ws.gate_bias[:, 0].mean())  # [B, T]
    value = proj[..., DK + 2:]
    if p.pair_previous:  # the item offered at t − 1, through its own map, joins the write at t
        value = value + ws.previous_proj(torch.nn.functional.pad(value, (0, 0, 1, 0))[:, :-1])
    q = ws.stream_proj(torch.nn.functional.rms_norm(x, (D,)))[..., DK:]
    b = c.shape[0]
    mem = ws.memory0.expand(b, K, DS).clone()
    pointer = torch.zeros(b)
    outs = []
    hd = DS // p.heads
    for t in range(T):
        for j in range(K):
            dist = ((pointer - j + K / 2) % K - K / 2).abs()
            a = (gate[:, t] * (1 - dist).clamp(min=0)).clamp(max=1 - 1e-6)[:, None]
            mem[:, j] = (1 - a) * mem[:, j] + a * torch.tanh(value[:, t])
        pointer = pointer + gate[:, t]
        key, val = ws.read_proj(mem).split(DS, -1)  # [B, K, DS]
        qh = q[:, t].view(b, 1, p.heads, hd)
        score = (key.view(b, K, p.heads, hd) * qh).sum(-1) + (ws.slot_key.view(1, K, p.heads, hd) * qh).sum(-1)
        beta = torch.softmax(score / math.sqrt(hd), 1)  # [B, K, H]
        outs.append(ws.out_proj((beta[..., None] * val.view(b, K, p.heads, hd)).sum(1).flatten(-2)))
    return torch.stack(outs, 1)


@pytest.mark.parametrize("pair_previous", [False, True])
@pytest.mark.parametrize("gate_gain", [40.0, 12.0])  # hard gates, and soft ones (fractional pointers)
def test_the_parallel_scan_equals_a_step_by_step_ring_buffer(gate_gain, pair_previous):
    ws = wired(gate_gain=gate_gain, pair_previous=pair_previous)
    c = candidates([1, 3, 4, 8, 9, 12], b=2)
    c[1, :, 0] = torch.rand(T) * 1.8  # the second row: gates of every degree
    x = torch.randn(2, T, D)
    out, _ = run(ws, c, x)
    with torch.no_grad():
        ref = reference(ws, x, c)
    assert torch.allclose(out, ref, atol=1e-5)


def test_allocated_workspace_is_causal_and_the_gate_learns_through_the_pointer():
    ws = wired(gate_gain=25.0)
    c = candidates([1, 4, 6])
    x = torch.randn(1, T, D)
    out, _ = run(ws, c, x)
    c2 = c.clone()
    c2[:, 9:] = torch.randn(1, T - 9, D) * 5
    c2[:, 9:, 0] = 5.0  # writes from 9 on
    out2, _ = run(ws, c2, x)
    assert torch.equal(out[:, :9], out2[:, :9]) and not torch.allclose(out[:, 9:], out2[:, 9:])
    c.requires_grad_(True)
    out, _ = run(ws, c, x)
    out[:, -1].square().sum().backward()
    assert ws.cand_proj.weight.grad[DK].abs().sum() > 0  # the gate row
    assert ws.read_proj.weight.grad.abs().sum() > 0 and ws.slot_key.grad.abs().sum() > 0


def test_the_pointer_passes_gradient_only_when_asked():
    """A gate's gradient: from its own write only, or (pointer_grad) also from where later writes land."""
    grads = []
    for pointer_grad in (False, True):
        ws = wired(gate_gain=3.0, pointer_grad=pointer_grad)
        with torch.no_grad():
            ws.gate_bias[:, 0] = -1.0  # soft gates everywhere
        c = candidates([1, 4, 6]).requires_grad_(True)
        out, _ = run(ws, c)
        out[:, -1].square().sum().backward()
        grads.append(c.grad[0, :, 0].clone())  # d loss / d (gate input) at each position
    assert not torch.allclose(grads[0], grads[1])
    # a gate whose own write is forgotten by the end still moves later writes through the pointer
    assert grads[1][1].abs() > grads[0][1].abs()


@pytest.mark.parametrize("addressing", ["mix", "address"])
def test_the_keyed_read_works_with_every_write_mode(addressing):
    ws = WorkspaceComponent(WorkspaceParams(slots=K, top_k=1, d_slot=DS, addressing=addressing, read="keyed"),
                            SIZES)
    out = ws({"x": torch.randn(2, T, D), "candidates": [torch.randn(2, T, D), torch.randn(2, T, D)]}, Context())
    assert out["out"].shape == (2, T, D) and torch.isfinite(out["out"]).all()
    plain = WorkspaceComponent(WorkspaceParams(slots=K, d_slot=DS, addressing=addressing), SIZES)
    assert not hasattr(plain, "read_proj")  # the default read has no key/value projections


def test_every_winner_adds_its_gate_in_full():
    """Two winners whose gate inputs each leave the gate shut open it together (a sum, not a mean)."""
    ws = WorkspaceComponent(WorkspaceParams(slots=K, top_k=2, d_key=DK, d_slot=DS, addressing="allocate",
                                            read="keyed", chunk=4), SIZES)
    with torch.no_grad():
        ws.cand_proj.weight[DK] = 0.0
        ws.cand_proj.weight[DK, 0] = 1.0
        ws.gate_bias[:, 0] = -1.0
    c = torch.zeros(1, T, D)
    c[..., 1] = 1.0
    c[:, 5, 0] = 1.0  # ĉ[0] = rms-normalised: gate logit per candidate √(D/2) = 4 at t = 5
    ctx = Context(recorder=Recorder(batch=None), node="ws")
    ws({"x": torch.randn(1, T, D), "candidates": [c, c.clone()]}, ctx)
    a = ctx.recorder.traces["ws"]["write_gate"][0]
    expected = torch.sigmoid(torch.tensor(2 * 4.0 - 1.0))
    assert torch.allclose(a[5].sum(), expected, atol=1e-4)
    assert torch.allclose(a[4].sum(), torch.sigmoid(torch.tensor(-1.0)), atol=1e-4)


def test_pair_previous_binds_the_item_offered_just_before_a_write():
    """With pair_previous the write at t also carries the candidate at t − 1 (where no write happens),
    so changing it changes the read from t on and nothing before; without it, nothing changes."""
    c = candidates([3, 7])
    c2 = c.clone()
    c2[:, 6, 1:] = torch.randn(D - 1) * 3  # position 6: no write there (gate input 0), just before one
    x = torch.randn(1, T, D)
    for pair, moves in ((True, True), (False, False)):
        ws = wired(pair_previous=pair)
        out, _ = run(ws, c, x)
        out2, _ = run(ws, c2, x)
        assert torch.equal(out[:, :6], out2[:, :6])  # causal
        assert (not torch.allclose(out[:, 7:], out2[:, 7:], atol=1e-6)) == moves


def test_pair_previous_needs_allocated_writes():
    from cogsim.bounds import FieldError
    with pytest.raises(FieldError, match="pair_previous.*allocate"):
        WorkspaceParams(addressing="address", pair_previous=True).check()
