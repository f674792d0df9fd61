"""The workspace component: causality, capacity, salience, gradient routing, traces, determinism."""
import pytest
import torch

from cogsim.component import Context, Sizes
from cogsim.errors import CogsimError, SpecError
from cogsim.graph.params import build_params
from cogsim.registry import registry
from cogsim.trace import Recorder
from cogsim.workspace import WorkspaceComponent, WorkspaceParams

D, B, T = 32, 2, 21
SIZES = Sizes(d_model=D, n_heads=4, seq_len=T, vocab_size=50)


def make(seed=0, **kw):
    torch.manual_seed(seed)
    kw.setdefault("chunk", 8)  # T=21 exercises padding and the chunk-level recursion
    kw.setdefault("d_slot", 16)
    return WorkspaceComponent(WorkspaceParams(**kw), SIZES)


def data(m, seed=1, salience=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, D, generator=g)
    cands = [torch.randn(B, T, D, generator=g) for _ in range(m)]
    inputs = {"x": x, "candidates": cands}
    if salience:
        inputs["salience"] = torch.rand(B, T, generator=g)
    return inputs


def traced(ws, inputs):
    ctx = Context(recorder=Recorder(batch=None), node="ws")
    out = ws(inputs, ctx)["out"]
    return out, ctx.recorder.traces["ws"]


def test_registered_and_ports():
    assert registry.get("workspace") is WorkspaceComponent
    ins, outs = WorkspaceComponent.ports(WorkspaceParams(), SIZES)
    assert ins["candidates"].multi and ins["candidates"].required and ins["candidates"].size == D
    assert ins["salience"].kind == "signal" and not ins["salience"].required and ins["salience"].multi
    assert set(outs) == {"out"} and WorkspaceComponent.residual


@pytest.mark.parametrize("which", ["x", "candidate", "salience"])
def test_causal(which):
    ws = make(salience_target=1)
    a = data(3, salience=True)
    b = {"x": a["x"].clone(), "candidates": [c.clone() for c in a["candidates"]],
         "salience": a["salience"].clone()}
    t0 = 13
    if which == "x":
        b["x"][:, t0 + 1:] = torch.randn(B, T - t0 - 1, D) * 5
    elif which == "candidate":
        b["candidates"][1][:, t0 + 1:] *= 50.0
    else:
        b["salience"][:, t0 + 1:] = 100.0
    out_a, tr_a = traced(ws, a)
    out_b, tr_b = traced(ws, b)
    assert torch.allclose(out_a[:, : t0 + 1], out_b[:, : t0 + 1], atol=1e-6, rtol=0)
    assert not torch.allclose(out_a[:, t0 + 1:], out_b[:, t0 + 1:], atol=1e-4)
    for name in ("bids", "winners", "slot_owner"):
        assert torch.equal(tr_a[name][:, : t0 + 1], tr_b[name][:, : t0 + 1])


@pytest.mark.parametrize("m", [1, 2, 3, 4, 5])
def test_capacity_and_traces_for_any_number_of_candidates(m):
    k, slots = 2, 5
    ws = make(top_k=k, slots=slots)
    ws.set_candidate_names([f"mod{i}" for i in range(m)])
    out, tr = traced(ws, data(m))
    assert out.shape == (B, T, D) and torch.isfinite(out).all()
    assert tr["bids"].shape == (B, T, m) and tr["winners"].shape == (B, T, m)
    assert tr["winners"].dtype == torch.bool
    assert (tr["winners"].sum(-1) == min(k, m)).all()  # never more than k writers per position
    owner = tr["slot_owner"]
    assert owner.shape == (B, T, slots)  # never more than K slots held
    assert owner.min() >= -1 and owner.max() < m
    assert tr["write_gate"].shape == (B, T, slots) and tr["read_weights"].shape == (B, T, slots)
    assert torch.allclose(tr["read_weights"].sum(-1), torch.ones(B, T))


def test_slot_owner_starts_empty_then_is_held():
    ws = make(slots=4, forget_bias=-2.0, input_bias=3.0)  # forget fast, write strongly
    _, tr = traced(ws, data(3))
    assert (tr["slot_owner"][:, 0] >= -1).all()
    later = tr["slot_owner"][:, 5:]
    assert (later >= 0).all()  # the initial content has been overwritten
    # a held slot's owner is a candidate that has won at some position up to then
    won_so_far = tr["winners"].cummax(1).values
    for b in range(B):
        for t in range(5, T):
            for j in range(4):
                assert won_so_far[b, t, tr["slot_owner"][b, t, j]]


def test_losers_write_nothing():
    """Changing a losing candidate (keeping it a loser) leaves the output unchanged."""
    ws = make(top_k=1, magnitude_gain=1.0)
    inputs = data(3)
    inputs["candidates"][0] = inputs["candidates"][0] * 1e3  # far louder: wins everywhere
    out_a, tr = traced(ws, inputs)
    assert tr["winners"][..., 0].all()
    inputs["candidates"][2] = torch.randn(B, T, D) * 0.5
    out_b, tr_b = traced(ws, inputs)
    assert tr_b["winners"][..., 0].all()
    assert torch.allclose(out_a, out_b, atol=1e-6)


def test_salience_port_makes_a_candidate_win():
    ws = make(top_k=1, salience_target=2, salience_gain=1.0)
    inputs = data(4, salience=True)
    _, base = traced(ws, inputs)
    inputs["salience"] = torch.zeros(B, T)
    inputs["salience"][:, 10:] = 50.0
    _, tr = traced(ws, inputs)
    assert tr["winners"][:, 10:, 2].all()
    assert (tr["bids"][:, 10:, 2] > 0.9).all()
    assert not base["winners"][:, 10:, 2].all()  # it did not win there on its own


def test_salience_target_by_name_and_list():
    ws = make(top_k=1, salience_target=["htm", "all"])
    ws.set_candidate_names(["engram", "snn", "htm"])
    inputs = data(3)
    loud = torch.full((B, T), 40.0)
    inputs["salience"] = [loud, torch.zeros(B, T)]
    _, tr = traced(ws, inputs)
    assert tr["winners"][..., 2].all()
    # the "all" signal raises the write gate instead of a bid
    inputs["salience"] = [torch.zeros(B, T), torch.full((B, T), 5.0)]
    _, hi = traced(ws, inputs)
    inputs["salience"] = [torch.zeros(B, T), torch.zeros(B, T)]
    _, lo = traced(ws, inputs)
    assert (hi["write_gate"] > lo["write_gate"]).all()


def test_salience_target_errors():
    ws = make(salience_target="htm")
    with pytest.raises(CogsimError, match="salience_target 'htm' is not a candidate"):
        ws.set_candidate_names(["engram", "snn"])
    ws = make(salience_target=["all", 0])
    with pytest.raises(CogsimError, match="2 targets but 1 salience edges"):
        ws(data(2, salience=True), Context())
    ws = make(salience_target=3)
    with pytest.raises(CogsimError, match="salience_target 3 but only 2 candidates"):
        ws(data(2, salience=True), Context())
    ws = make(max_candidates=2)
    with pytest.raises(CogsimError, match="max_candidates"):
        ws(data(3), Context())


def test_magnitude_makes_a_candidate_win():
    ws = make(top_k=2)
    inputs = data(5)
    inputs["candidates"][3] = inputs["candidates"][3] * 1e3
    _, tr = traced(ws, inputs)
    assert tr["winners"][..., 3].all()


def _modules_and_grads(straight_through):
    """Three small modules feed the workspace; module 0 is loud (always wins), 2 is quiet (always loses)."""
    ws = make(top_k=1, straight_through=straight_through)
    torch.manual_seed(5)
    mods = torch.nn.ModuleList(torch.nn.Linear(D, D) for _ in range(3))
    inputs = data(3)
    feats = inputs["candidates"][0]
    cands = [mods[0](feats) * 100.0, mods[1](feats), mods[2](feats) * 0.01]
    out, tr = traced(ws, {"x": inputs["x"], "candidates": cands})
    (out * torch.randn_like(out)).sum().backward()
    return tr, [m.weight.grad for m in mods]


def test_gradients_reach_winners_not_losers_values():
    tr, grads = _modules_and_grads(straight_through=False)
    assert tr["winners"][..., 0].all() and not tr["winners"][..., 2].any()
    assert grads[0].abs().sum() > 0  # the winner learns from what it wrote
    assert torch.equal(grads[2], torch.zeros_like(grads[2]))  # the loser: nothing


def test_straight_through_lets_losers_bids_learn():
    tr, grads = _modules_and_grads(straight_through=True)
    assert tr["winners"][..., 0].all() and not tr["winners"][..., 2].any()
    assert grads[0].abs().sum() > 0
    assert grads[2].abs().sum() > 0  # only through its bid (its values wrote nothing, see above)


def test_gradient_reaches_the_stream_and_parameters():
    ws = make()
    inputs = data(3)
    inputs["x"].requires_grad_()
    out = ws(inputs, Context())["out"]
    out.square().sum().backward()
    assert inputs["x"].grad.abs().sum() > 0
    for name, p in ws.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_deterministic():
    a = make(seed=3)(data(4, salience=True), Context())["out"]
    b = make(seed=3)(data(4, salience=True), Context())["out"]
    assert torch.equal(a, b)


def test_identity_values_when_d_slot_is_d_model():
    ws = make(d_slot=D)
    assert not ws.project_values
    assert torch.isfinite(ws(data(2), Context())["out"]).all()
    assert make(d_slot=D, value_proj=True).project_values


def test_single_tensor_inputs_accepted():
    ws = make()
    inputs = data(1, salience=True)
    a = ws(inputs, Context())["out"]
    b = ws({**inputs, "candidates": inputs["candidates"][0]}, Context())["out"]
    assert torch.equal(a, b)


@pytest.mark.parametrize("field,value", [("slots", 0), ("top_k", 0), ("temperature", 0.0), ("d_slot", 10),
                                         ("chunk", 1), ("salience_target", -1)])
def test_bad_params(field, value):
    with pytest.raises(ValueError, match=f"^{field}"):
        WorkspaceParams(**{field: value})


def test_params_from_yaml_mapping():
    p = build_params(WorkspaceParams, {"slots": 5, "salience_target": ["htm", 1]}, file="a.yaml",
                     where="ws", line=3)
    assert p.slots == 5 and p.salience_target == ["htm", 1]
    single = build_params(WorkspaceParams, {"salience_target": 2}, file=None, where="ws", line=1)
    assert single.salience_target == 2
    with pytest.raises(SpecError, match="slots"):
        build_params(WorkspaceParams, {"slots": 0}, file="a.yaml", where="ws", line=3)


def test_silent_candidate_loses_and_stays_finite():
    """An all-zero candidate (e.g. a module ablated to nothing) bids low and produces no NaN."""
    ws = make(top_k=1)
    inputs = data(3)
    inputs["candidates"][1] = torch.zeros(B, T, D, requires_grad=True)
    out, tr = traced(ws, inputs)
    assert not tr["winners"][..., 1].any()
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(inputs["candidates"][1].grad).all()


def test_default_slot_width_is_a_quarter_of_d_model():
    assert WorkspaceComponent(WorkspaceParams(), Sizes(256, 4, 16, 10)).d_slot == 64
    assert WorkspaceComponent(WorkspaceParams(heads=3), Sizes(100, 4, 16, 10)).d_slot == 24
    assert WorkspaceComponent(WorkspaceParams(d_slot=40), Sizes(256, 4, 16, 10)).d_slot == 40


def test_gradcheck_without_straight_through():
    """Analytic gradients equal finite differences (winners fixed; float64, tiny sizes)."""
    torch.manual_seed(0)
    sizes = Sizes(d_model=8, n_heads=2, seq_len=6, vocab_size=10)
    ws = WorkspaceComponent(WorkspaceParams(slots=3, top_k=1, d_slot=4, d_key=4, heads=2, chunk=4,
                                            straight_through=False), sizes).double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 6, 8, dtype=torch.float64, generator=g, requires_grad=True)
    c0 = torch.randn(1, 6, 8, dtype=torch.float64, generator=g).mul(3.0).requires_grad_()
    c1 = torch.randn(1, 6, 8, dtype=torch.float64, generator=g, requires_grad=True)

    def f(x, c0, c1):
        return ws({"x": x, "candidates": [c0, c1]}, Context())["out"]

    assert torch.autograd.gradcheck(f, (x, c0, c1), eps=1e-6, atol=1e-6, fast_mode=True)


def test_unchanged_candidates_are_not_read_again_on_later_cycles():
    """A candidate handed over unchanged on cycle 2 reuses cycle 1's reading: same output and
    gradients as reading it again, and nothing is kept once the last cycle ran."""
    ws = make()
    first = data(3, seed=2)
    fresh = [c.clone().requires_grad_(True) for c in first["candidates"]]
    same = fresh[0]  # upstream of the feedback: the very same tensor on both cycles
    second = {"x": torch.randn(B, T, D), "candidates": [same, fresh[1] * 2, fresh[2] + 1]}
    calls = []
    real = ws.cand_proj.forward
    ws.cand_proj.forward = lambda c: (calls.append(c), real(c))[1]
    out1 = ws({**first, "candidates": fresh}, Context(cycle=0, cycles=2))["out"]
    out2 = ws(second, Context(cycle=1, cycles=2))["out"]
    assert len(calls) == 5 and not any(c is same for c in calls[3:])
    assert ws._cycle_cache == {}
    (out1.square().sum() + out2.square().sum()).backward()
    grads = [c.grad.clone() for c in fresh]

    del ws.cand_proj.forward
    again = [c.detach().clone().requires_grad_(True) for c in fresh]
    ref1 = ws({**first, "candidates": again}, Context(cycle=0, cycles=1))["out"]
    ref2 = ws({"x": second["x"], "candidates": [again[0], again[1] * 2, again[2] + 1]},
              Context(cycle=0, cycles=1))["out"]  # every candidate read anew
    torch.testing.assert_close(out2, ref2, rtol=0, atol=0)
    torch.testing.assert_close(out1, ref1, rtol=0, atol=0)
    (ref1.square().sum() + ref2.square().sum()).backward()
    for g, c in zip(grads, again):
        torch.testing.assert_close(g, c.grad)
