"""The model executes the plan: causality, feedback cycles, recording, the Python API."""
from __future__ import annotations

import pytest
import torch

import cogsim
from cogsim.component import Component
from cogsim.registry import registry


def test_build_model_maps_ids_to_logits(tiny_arch):
    model = cogsim.build_model(tiny_arch, vocab_size=300)
    logits = model(torch.randint(0, 300, (3, 16)))
    assert logits.shape == (3, 16, 300)
    with pytest.raises(ValueError, match="LongTensor"):
        model(torch.zeros(3, 16))


def test_transformer_is_causal():
    model = cogsim.build_model("architectures/transformer.yaml", vocab_size=500,
                               overrides=["model.d_model=32", "model.n_heads=2"]).eval()
    ids = torch.randint(0, 500, (2, 24))
    changed = ids.clone()
    changed[:, 12:] = torch.randint(0, 500, (2, 12))
    with torch.no_grad():
        a, b = model(ids), model(changed)
    assert torch.equal(a[:, :12], b[:, :12])
    assert not torch.allclose(a[:, 12:], b[:, 12:])


def test_tied_head_shares_the_embedding(tiny_arch):
    model = cogsim.build_model(tiny_arch, vocab_size=300)
    params = dict(model.named_parameters())
    assert "nodes.embed.weight" in params and not any(k.startswith("nodes.head.weight") for k in params)


class Probe(Component):
    """A test component that publishes a trace and counts its calls."""

    type_name = "probe_for_tests"
    Params = type("P", (), {"__dataclass_fields__": {}})

    def __init__(self, params, sizes):
        super().__init__(params, sizes)
        self.calls = 0
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, inputs, ctx):
        self.calls += 1
        ctx.record("mean", lambda: inputs["x"].mean(-1))
        return {"out": inputs["x"] * self.scale * 0.5}


@pytest.fixture
def probe_registered():
    from dataclasses import dataclass

    @dataclass
    class NoParams:
        pass

    Probe.Params = NoParams
    registry.register(Probe)
    yield
    registry._classes.pop("probe_for_tests", None)


FEEDBACK = """\
model: {d_model: 32, n_heads: 2, seq_len: 16, vocab_size: 300, cycles: %d}
nodes:
  embed: {type: embedding}
  block1: {type: block}
  probe: {type: probe_for_tests}
  block2: {type: block}
  head: {type: lm_head}
stack: [embed, block1, probe, block2, head]
edges:
  - {from: block2.delta, to: probe.x, feedback: true}
"""


def test_feedback_changes_the_output_only_from_cycle_two(write_arch, probe_registered):
    torch.manual_seed(0)
    two = cogsim.build_model(write_arch(FEEDBACK % 2, "two.yaml"), vocab_size=300).eval()
    torch.manual_seed(0)
    plain = cogsim.build_model(write_arch(FEEDBACK.replace("edges:\n  - {from: block2.delta, to: probe.x, feedback: true}\n", "") % 1,
                                          "one.yaml"), vocab_size=300).eval()
    plain.load_state_dict(two.state_dict())
    ids = torch.randint(0, 300, (2, 16))
    _, traces = two.trace(ids)
    # cycle 1 (index 0) equals the model without feedback; cycle 2 differs because feedback arrived
    _, plain_traces = plain.trace(ids)
    assert torch.equal(traces["probe"]["mean"], plain_traces["probe"]["mean"])
    assert not torch.allclose(traces["probe"]["mean@cycle1"], traces["probe"]["mean"])
    assert not torch.allclose(two(ids), plain(ids))
    # nodes upstream of the feedback edge ran once per forward
    before = two.nodes["probe"].calls
    two(ids)
    assert two.nodes["probe"].calls - before == 2
    assert two.plan.feedback_affected == {"probe", "block2", "head"}


def test_feedback_model_is_causal(write_arch, probe_registered):
    model = cogsim.build_model(write_arch(FEEDBACK % 3), vocab_size=300).eval()
    ids = torch.randint(0, 300, (1, 16))
    changed = ids.clone()
    changed[:, 9:] = (changed[:, 9:] + 1) % 300
    with torch.no_grad():
        assert torch.equal(model(ids)[:, :9], model(changed)[:, :9])


def test_recording_is_off_unless_asked(write_arch, probe_registered):
    model = cogsim.build_model(write_arch(FEEDBACK % 2), vocab_size=300)
    computed = []
    original = model.nodes["probe"].forward

    def spy(inputs, ctx):
        computed.append(ctx.recording)
        return original(inputs, ctx)

    model.nodes["probe"].forward = spy
    model(torch.randint(0, 300, (1, 16)))
    assert computed and not any(computed)
    with model.recording(nodes=["probe"], max_positions=5) as rec:
        model(torch.randint(0, 300, (2, 16)))
    assert rec.traces["probe"]["mean"].shape == (1, 5)
    assert "block1" not in rec.traces
