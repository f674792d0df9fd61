"""The workspace inside a small model: candidates from several modules, broadcast fed back to an
earlier module on the second cognitive cycle; causal end to end, traces per cycle."""
import pytest
import torch

import cogsim

ARCH = """\
name: ws_small
model: {d_model: 32, n_heads: 4, seq_len: 16, vocab_size: 300, cycles: 2}
nodes:
  embed: {type: embedding}
  attn:  {type: attention}
  ff:    {type: feedforward}
  ws:    {type: workspace, slots: 3, top_k: 1, chunk: 4}
  head:  {type: lm_head}
stack: [embed, attn, ff, ws, head]
edges:
  - attn.delta -> ws.candidates
  - ff.delta -> ws.candidates
  - {from: ws.delta, to: attn.x, feedback: true}
"""


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "ws.yaml"
    path.write_text(ARCH)
    torch.manual_seed(0)
    return cogsim.build_model(str(path)).eval()


def test_model_with_workspace_is_causal(model):
    ids = torch.randint(0, 300, (2, 16), generator=torch.Generator().manual_seed(1))
    other = ids.clone()
    other[:, 9:] = torch.randint(0, 300, (2, 7), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        a, b = model(ids), model(other)
    assert torch.allclose(a[:, :9], b[:, :9], atol=1e-5)
    assert not torch.allclose(a[:, 9:], b[:, 9:], atol=1e-5)


def test_traces_per_cycle_and_capacity(model):
    ids = torch.randint(0, 300, (2, 16), generator=torch.Generator().manual_seed(1))
    _, traces = model.trace(ids)
    ws = traces["ws"]
    for suffix in ("", "@cycle1"):
        assert ws["bids" + suffix].shape == (1, 16, 2)
        assert (ws["winners" + suffix].sum(-1) == 1).all()
        assert ws["slot_owner" + suffix].shape == (1, 16, 3)
    # the broadcast fed back into attention changes what the modules offer on cycle 2
    assert not torch.equal(ws["bids"], ws["bids@cycle1"])


@pytest.mark.parametrize("params,message", [
    ("salience_target: engram", "salience_target 'engram' is not a candidate (candidates: attn, ff)"),
    ("max_candidates: 1", "2 candidates but max_candidates is 1; raise max_candidates"),
])
def test_the_graph_check_refuses_targets_and_counts_the_edges_cannot_give(tmp_path, params, message):
    from cogsim.errors import SpecError

    path = tmp_path / "ws.yaml"
    path.write_text(ARCH.replace("chunk: 4}", "chunk: 4, " + params + "}"))
    with pytest.raises(SpecError) as err:
        cogsim.load_architecture(path)
    assert str(err.value) == f"{path}:7: node 'ws': {message}"
