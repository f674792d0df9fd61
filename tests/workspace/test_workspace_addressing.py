"""Addressed writes (``addressing: address``): a winner is written into the slot its key matches,
and a slot that is not written keeps its content (no decay), unlike the mixing workspace."""
import pytest
import torch

from cogsim.component import Context, Sizes
from cogsim.trace import Recorder
from cogsim.workspace import WorkspaceComponent, WorkspaceParams

D, T, K, DK = 32, 12, 4, 8
SIZES = Sizes(d_model=D, n_heads=4, seq_len=T, vocab_size=50)
WRITE_AT, SLOT = 3, 2


def wired(addressing: str) -> WorkspaceComponent:
    """One candidate; its dimension 0 opens the input gate, dimensions 1… are its key; slot j's
    query is the j-th key direction; the stream's queries are zero (every slot read alike)."""
    torch.manual_seed(0)
    ws = WorkspaceComponent(WorkspaceParams(slots=K, top_k=1, d_key=DK, d_slot=16, input_bias=-20.0,
                                            addressing=addressing, chunk=4), SIZES)
    with torch.no_grad():
        w = torch.zeros_like(ws.cand_proj.weight)
        w[:DK, 1 : 1 + DK] = torch.eye(DK)  # key = candidate dims 1..DK
        w[DK, 0] = 40.0  # g_i
        w[DK + 2 :] = torch.randn(16, D)  # values
        ws.cand_proj.weight.copy_(w)
        ws.stream_proj.weight.zero_()
        ws.slot_query.copy_(10.0 * torch.eye(K, DK))
    return ws


def candidate() -> torch.Tensor:
    c = torch.zeros(1, T, D)
    c[:, :, D - 1] = 1.0  # no gate, no key
    c[:, WRITE_AT] = 0.0
    c[:, WRITE_AT, 0] = c[:, WRITE_AT, 1 + SLOT] = 1.0  # gate open, key of slot 2
    return c


def run(ws):
    ctx = Context(recorder=Recorder(batch=None), node="ws")
    out = ws({"x": torch.zeros(1, T, D), "candidates": [candidate()]}, ctx)["out"]
    return out, ctx.recorder.traces["ws"]


def test_a_winner_goes_to_the_slot_its_key_matches():
    _, traces = run(wired("address"))
    gate = traces["write_gate"][0]  # [T, K]: the share of each slot that is overwritten
    assert gate[WRITE_AT, SLOT] > 0.99 and gate[WRITE_AT].sum() - gate[WRITE_AT, SLOT] < 0.01
    assert gate[torch.arange(T) != WRITE_AT].max() < 1e-6
    assert int(traces["slot_owner"][0, -1, SLOT]) == 0  # the candidate holds slot 2 to the end


def test_an_unwritten_slot_keeps_its_content_where_the_mixing_workspace_decays():
    out, _ = run(wired("address"))
    assert not torch.allclose(out[0, WRITE_AT - 1], out[0, WRITE_AT])  # the write changed the read
    assert torch.allclose(out[0, WRITE_AT:], out[0, WRITE_AT].expand(T - WRITE_AT, D), atol=1e-6)
    mixed, _ = run(wired("mix"))
    assert (mixed[0, -1] - mixed[0, WRITE_AT]).abs().max() > 1e-3  # forget gates decay the slots


def test_addressed_workspace_is_causal_and_learns():
    ws = wired("address")
    x, c = torch.randn(2, T, D), torch.randn(2, T, D)
    out = ws({"x": x, "candidates": [c, -c]}, Context())["out"]
    c2 = c.clone()
    c2[:, 7:] *= 30
    out2 = ws({"x": x, "candidates": [c2, -c2]}, Context())["out"]
    assert torch.equal(out[:, :7], out2[:, :7]) and not torch.allclose(out[:, 7:], out2[:, 7:])
    out.square().sum().backward()
    assert ws.slot_query.grad.abs().sum() > 0 and ws.cand_proj.weight.grad.abs().sum() > 0


def test_addressing_is_checked():
    with pytest.raises(Exception, match="addressing"):
        from cogsim.graph.params import build_params

        build_params(WorkspaceParams, {"addressing": "hash"}, file="f.yaml", where="node 'ws'", line=3)
