"""The ``snn`` component: ports, parameter errors, causality of sequence mode, per-token locality,
training, traces only while recording, and use inside a model built from YAML."""
from __future__ import annotations

import pytest
import torch

import cogsim
from cogsim.component import Context, Sizes
from cogsim.errors import SpecError
from cogsim.snn.component import SNNComponent, SNNParams
from cogsim.trace import Recorder

SIZES = Sizes(d_model=16, n_heads=2, seq_len=12, vocab_size=50)


def _component(**params) -> SNNComponent:
    comp = SNNComponent(SNNParams(**params), SIZES)
    torch.nn.init.normal_(comp.out.weight, std=0.2)  # the zero init would hide everything downstream
    return comp


def _x(b=2, t=12, seed=0):
    return torch.randn(b, t, SIZES.d_model, generator=torch.Generator().manual_seed(seed))


def test_ports_and_shapes():
    inputs, outputs = SNNComponent.ports(SNNParams(), SIZES)
    assert inputs["x"].kind == "hidden" and inputs["x"].size == 16
    assert outputs["out"].size == 16 and outputs["rate"].kind == "signal"
    out = _component(neurons=24, steps=3)({"x": _x()}, Context())
    assert out["out"].shape == (2, 12, 16) and out["rate"].shape == (2, 12)
    assert ((out["rate"] >= 0) & (out["rate"] <= 1)).all()


def test_starts_as_identity_of_the_residual_stream():
    comp = SNNComponent(SNNParams(), SIZES)
    assert torch.count_nonzero(comp({"x": _x()}, Context())["out"]) == 0


@pytest.mark.parametrize("neuron", ["leaky", "synaptic"])
@pytest.mark.parametrize("readout", ["rate", "membrane", "average"])
def test_sequence_mode_is_causal(neuron, readout):
    comp = _component(mode="sequence", neuron=neuron, readout=readout, steps=2, neurons=32, beta=0.95)
    x = _x()
    changed = x.clone()
    changed[:, 7:] = torch.randn(2, 5, 16)
    with torch.no_grad():
        a, b = comp({"x": x}, Context())["out"], comp({"x": changed}, Context())["out"]
    assert torch.equal(a[:, :7], b[:, :7])
    assert not torch.allclose(a[:, 7:], b[:, 7:])


def test_sequence_mode_carries_state_and_per_token_does_not():
    """Changing token 3 changes later outputs only when the membrane flows along the text."""
    x = _x()
    changed = x.clone()
    changed[:, 3] += 3.0
    for mode, later_changes in (("sequence", True), ("per_token", False)):
        comp = _component(mode=mode, readout="membrane", neurons=32, beta=0.95)
        with torch.no_grad():
            a, b = comp({"x": x}, Context())["out"], comp({"x": changed}, Context())["out"]
        assert torch.equal(a[:, :3], b[:, :3])
        assert not torch.allclose(a[:, 3], b[:, 3])
        assert (not torch.allclose(a[:, 4:], b[:, 4:])) == later_changes, mode


@pytest.mark.parametrize("mode", ["per_token", "sequence"])
def test_paths_agree_inside_the_component(mode):
    x = _x()
    outs = []
    for fused in ("native", "torch", "loop"):
        torch.manual_seed(0)
        comp = _component(mode=mode, fused=fused, neurons=20, steps=3)
        outs.append(comp({"x": x}, Context())["out"])
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])


@pytest.mark.parametrize("mode,neuron", [("per_token", "leaky"), ("sequence", "leaky"), ("sequence", "synaptic")])
def test_component_trains(mode, neuron):
    """Loss falls on a small causal regression: predict a leaky running mean of a feature."""
    torch.manual_seed(0)
    comp = SNNComponent(SNNParams(mode=mode, neuron=neuron, neurons=64, steps=2), SIZES)
    x = _x(8, 12, seed=1)
    if mode == "sequence":  # needs memory of earlier positions
        target = torch.zeros_like(x[..., :4])
        for t in range(12):
            target[:, t] = 0.7 * (target[:, t - 1] if t else 0) + x[:, t, :4]
    else:  # a pointwise non-linear map
        target = torch.relu(x[..., :4]) - 0.5
    opt = torch.optim.Adam(comp.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        pred = comp({"x": x}, Context())["out"][..., :4]
        loss = (pred - target).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], losses[::8]
    assert comp.lif.beta.grad is not None and comp.inp.weight.grad.abs().sum() > 0


def test_traces_only_while_recording():
    comp = _component(neurons=24, steps=3, mode="sequence")
    calls = []

    class Spy(Recorder):
        def add(self, node, name, value, cycle=0):
            calls.append(name)
            super().add(node, name, value, cycle)

    comp({"x": _x()}, Context(recorder=Spy(nodes=["other"]), node="snn"))
    assert calls == []
    rec = Recorder(max_units=8)
    comp({"x": _x()}, Context(recorder=rec, node="snn"))
    traces = rec.traces["snn"]
    assert traces["spikes"].dtype == torch.uint8 and traces["spikes"].shape == (1, 12, 3, 8)
    assert set(traces["spikes"].unique().tolist()) <= {0, 1}
    assert traces["firing_rate"].shape == (24,) and traces["rate"].shape == (1, 12)
    assert torch.allclose(traces["rate"][0], traces["spikes"][0].float().mean((1, 2)), atol=0.5)


@pytest.mark.parametrize("field,value,message", [
    ("neurons", 0, r"neurons: must be ≥ 1, got 0"),
    ("beta", 1.5, r"beta: must be in \[0, 1\], got 1.5"),
    ("beta", (0.9, 1.0), r"beta: a range must be \[low, high\] with low ≤ high < 1 .*, got \[0.9, 1.0\]"),
    ("beta", (0.99, 0.9), r"beta: a range must be \[low, high\] with low ≤ high < 1 .*, got \[0.99, 0.9\]"),
    ("beta", (0.5, 1.5), r"beta: every item must be in \[0, 1\], got 1.5"),
    ("threshold", 0.0, "threshold: must be > 0, got 0.0"),
    ("surrogate", "arctan", "surrogate: unknown surrogate 'arctan'"),
    ("surrogate", "atan(alpha=x)", "not a number"),
])
def test_bad_params_are_rejected(field, value, message):
    with pytest.raises(ValueError, match=message):
        SNNParams(**{field: value})


def test_a_beta_range_spreads_time_constants_over_the_neurons():
    """``beta: [low, high]``: one decay per neuron, time constants 1/(1 − β) log-spaced from 5 to
    1000 sub-steps; an impulse 48 tokens back still moves the slow neurons and not the fast ones."""
    comp = _component(mode="sequence", readout="membrane", reset="none", steps=1, neurons=3, beta=[0.8, 0.999])
    tau = 1 / (1 - comp.lif.beta.detach().double())
    assert torch.allclose(tau, torch.tensor([5.0, 1000 ** 0.5 * 5 ** 0.5, 1000.0], dtype=torch.float64), rtol=1e-4)
    current = torch.zeros(50, 1, 3)
    current[0] = 1.0  # an impulse at token 0, read at token 48
    _, mem = comp.lif(current)
    expected = comp.lif.beta.detach() ** 48
    assert torch.allclose(mem[48, 0], expected, rtol=1e-5)
    assert mem[48, 0, 0] < 1e-4 and mem[48, 0, 2] > 0.95


@pytest.mark.parametrize("neuron", ["leaky", "synaptic"])
def test_the_average_readout_puts_every_time_constant_on_one_scale(neuron):
    """``readout: average``: a constant input current c held long enough reads back as c from every
    neuron, fast or slow (the plain membrane reads c / ((1 − β)(1 − α)): 1000 c for τ = 1000), and
    before that it is the membrane scaled per neuron."""
    d = SIZES.d_model
    comp = SNNComponent(SNNParams(mode="sequence", neuron=neuron, readout="average", reset="none", steps=1,
                                  neurons=d, beta=[0.5, 0.99], alpha=0.6, fused="loop"), SIZES)
    c = torch.linspace(-1, 2, d)
    with torch.no_grad():
        comp.inp.weight.zero_()
        comp.inp.bias.copy_(c)  # every position drives neuron i with c_i
        comp.out.weight.copy_(torch.eye(d))  # and the output is the read-out itself
        read = comp({"x": _x(b=1, t=3000)}, Context())["out"]
        mem = comp.lif(c.expand(3000, 1, d))[-1]
    assert torch.allclose(read[0, -1], c, atol=1e-4)
    assert torch.allclose(read[0, 5], mem[5, 0] * comp.gain(), atol=1e-6)
    assert mem[-1, 0, -1] / c[-1] > 99  # the slowest neuron's membrane: 100 c (leaky) or more


def test_yaml_errors_name_file_and_line(write_arch):
    path = write_arch("""\
name: t
model: {d_model: 16, n_heads: 2, seq_len: 8, vocab_size: 300}
nodes:
  embed: {type: embedding}
  snn:
    type: snn
    mode: sideways
  head: {type: lm_head}
stack: [embed, snn, head]
""")
    with pytest.raises(SpecError, match=r"arch.yaml:7: .*mode"):
        cogsim.build_model(path)


def test_in_a_model_from_yaml(write_arch):
    path = write_arch("""\
name: t
model: {d_model: 16, n_heads: 2, seq_len: 10, vocab_size: 300}
nodes:
  embed: {type: embedding}
  block: {type: block}
  snn: {type: snn, neurons: 32, steps: 2, mode: sequence, surrogate: "fast_sigmoid(slope=10)"}
  head: {type: lm_head}
stack: [embed, block, snn, head]
""")
    model = cogsim.build_model(path)
    ids = torch.randint(0, 300, (2, 10))
    logits = model(ids)
    assert logits.shape == (2, 10, 300)
    logits.float().logsumexp(-1).mean().backward()
    snn = dict(model.components())["snn"]
    assert snn.out.weight.grad.abs().sum() > 0
    _, traces = model.trace(ids)
    assert traces["snn"]["spikes"].shape[-2:] == (2, 32)


def test_model_with_snn_trains(write_arch):
    """An SNN layer inside a model from YAML: next-token loss on a repeating pattern falls."""
    path = write_arch("""\
name: t
model: {d_model: 32, n_heads: 2, seq_len: 16, vocab_size: 300}
nodes:
  embed: {type: embedding}
  snn: {type: snn, neurons: 64, steps: 2, mode: sequence}
  head: {type: lm_head}
stack: [embed, snn, head]
""")
    torch.manual_seed(0)
    model = cogsim.build_model(path)
    ids = torch.tensor([[5, 17, 42, 99, 7, 63] * 3]).repeat(4, 1)[:, :16]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        logits = model(ids[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses[::6]
    snn = dict(model.components())["snn"]
    assert snn.lif.beta.grad is not None and snn.lif.beta.grad.abs().sum() > 0


def test_layers_keep_no_hidden_state():
    """Neuron state lives in the call, never on the layer or a class (snntorch issue 438)."""
    from cogsim.snn import Leaky
    a, b = Leaky(0.9, neurons=8), Leaky(0.5, neurons=8)
    x = torch.randn(5, 3, 8) + 0.5
    first = a(x)
    b(torch.randn(7, 2, 8))
    again = a(x)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not any(isinstance(v, torch.Tensor) and v.shape[:1] == (5,) for v in vars(a).values())
