"""Every mistake a user can make in an architecture file gives one line naming file:line and field."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import pytest

import cogsim
from cogsim.component import Component
from cogsim.errors import SpecError
from cogsim.graph.build import build_plan
from cogsim.graph.spec import read_spec
from cogsim.registry import Registry

HEADER = "model: {d_model: 32, n_heads: 2, seq_len: 16, vocab_size: 300}\n"
NODES = """\
nodes:
  embed: {type: embedding}
  block1: {type: block}
  block2: {type: block}
  head: {type: lm_head}
"""
STACK = "stack: [embed, block1, block2, head]\n"


def error_of(write_arch, text: str) -> SpecError:
    path = write_arch(text)
    with pytest.raises(SpecError) as info:
        cogsim.load_architecture(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    return info.value


CASES = {
    "unknown type": (HEADER + NODES.replace("type: block}", "type: blok}", 1) + STACK,
                     4, ["unknown type 'blok'", "did you mean 'block'", "node 'block1'"]),
    "unknown parameter": (HEADER + NODES.replace("{type: block}", "{type: block, n_head: 2}", 1) + STACK,
                          4, ["unknown parameter 'n_head'", "did you mean 'n_heads'", "node 'block1'"]),
    "missing type": (HEADER + NODES.replace("{type: block}", "{n_heads: 2}", 1) + STACK,
                     4, ["missing 'type'", "node 'block1'"]),
    "wrong value type": (HEADER + NODES.replace("{type: block}", "{type: block, n_heads: four}", 1) + STACK,
                         4, ["parameter 'n_heads'", "expected an integer or null", "str 'four'"]),
    "value out of range": (HEADER + NODES.replace("{type: block}", "{type: block, n_heads: 0}", 1) + STACK,
                           4, ["node 'block1': parameter 'n_heads': must be ≥ 1, got 0"]),
    "wrong setting type": ("model: {d_model: big}\n" + NODES + STACK, 1, ["model", "parameter 'd_model'",
                                                                           "expected an integer"]),
    "unknown node in edge": (HEADER + NODES + STACK + "edges:\n  - block9.out -> head.x\n",
                             9, ["unknown node 'block9'", "did you mean 'block2'"]),
    "unknown port in edge": (HEADER + NODES + STACK + "edges:\n  - block1.outt -> block2.x\n",
                             9, ["no output port 'outt'", "did you mean 'out'", "out, delta"]),
    "port type mismatch": (HEADER + NODES + STACK + "edges:\n  - tokens.ids -> block2.x\n",
                           9, ["port mismatch", "tokens.ids gives ids", "block2.x expects hidden[32]"]),
    "port size mismatch": (HEADER + NODES + "  proj: {type: linear, d_out: 16}\n" + STACK
                           + "edges:\n  - block1 -> proj\n  - proj -> block2\n",
                           11, ["port mismatch", "proj.out gives hidden[16]", "block2.x expects hidden[32]"]),
    "loop without feedback": (HEADER + NODES + STACK + "edges:\n  - block2.delta -> block1.x\n",
                              9, ["loop without a feedback edge", "block1 -> block2 -> block1", "feedback: true"]),
    "huge cycle count": (HEADER.replace("}", ", cycles: 1000000000000}") + NODES + STACK, 1,
                         ["model: parameter 'cycles': must be in [1, 64], got 1000000000000"]),
    "cycles without feedback": ("model:\n  d_model: 32\n  cycles: 3\n" + NODES + STACK, 3,
                                ["model: cycles: 3 cycles but no edge is marked 'feedback: true'", "set cycles: 1"]),
    "feedback without cycles": (HEADER + NODES + STACK + "edges:\n  - {from: block2.delta, to: block1.x, feedback: true}\n",
                                9, ["needs model.cycles", "feedback"]),
    "duplicate node": (HEADER + NODES + "  block1: {type: block}\n" + STACK, 7, ["duplicate key 'block1'", "line 4"]),
    "not a mapping": ("- embed\n- head\n", 1, ["expected a mapping at the top level", "got LineList"]),
    "not YAML": (HEADER + "nodes: {embed: {type: embedding}\n", 3, ["not valid YAML"]),
    "unknown section": (HEADER + NODES + STACK + "trian: {steps: 3}\n", 8, ["unknown section 'trian'", "did you mean 'train'"]),
    "unconnected input": (HEADER + NODES + "stack: [embed, block1, head]\nedges:\n  - block2 -> head\n",
                          5, ["input 'x' (hidden[32]) is not connected", "node 'block2'"]),
    "no head": (HEADER + NODES.replace("  head: {type: lm_head}\n", "") + "stack: [embed, block1, block2]\n",
                1, ["exactly one node producing logits", "found none"]),
    "bad edge syntax": (HEADER + NODES + STACK + "edges:\n  - block1 => block2\n", 9, ["expected an edge"]),
    "unsafe tag": (HEADER + "name: !!python/object/apply:os.system ['true']\n" + NODES + STACK, 2, ["not valid YAML"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_file_names_file_line_and_field(write_arch, case):
    text, line, fragments = CASES[case]
    err = error_of(write_arch, text)
    assert err.line == line, str(err)
    for fragment in fragments:
        assert fragment in str(err), (fragment, str(err))


def test_empty_file(write_arch):
    err = error_of(write_arch, "")
    assert "the file is empty" in str(err)


def test_missing_file(tmp_path):
    with pytest.raises(SpecError, match="file not found"):
        cogsim.load_architecture(tmp_path / "nope.yaml")


@dataclass
class NeedsSize:
    size: int


class Sized(Component):
    type_name = "sized"
    Params = NeedsSize

    def forward(self, inputs, ctx):
        return {"out": inputs["x"] * 0}


def test_missing_required_parameter_and_custom_registry(write_arch):
    reg = Registry()
    reg.register(Sized)
    path = write_arch(HEADER + NODES + "  extra: {type: sized}\n" + "stack: [embed, block1, extra, block2, head]\n")
    with pytest.raises(SpecError) as info:
        build_plan(read_spec(path), reg=reg)
    assert "missing required parameter 'size' (an integer)" in str(info.value)
    assert info.value.line == 7


def test_entry_point_components_are_found(monkeypatch):
    class EP:
        name, value = "sized_ep", f"{__name__}:Sized"

    monkeypatch.setattr("cogsim.registry.metadata.entry_points", lambda group: [EP] if group == "cogsim.components" else [])
    reg = Registry()
    assert "sized_ep" in reg.names()
    assert reg.get("sized_ep") is Sized


def test_cli_prints_one_line_and_exits_2(write_arch, capsys):
    from cogsim.cli import main

    path = write_arch(HEADER + NODES.replace("type: block}", "type: blok}", 1) + STACK)
    for command in ("check", "graph", "run"):
        assert main([command, str(path)]) == 2
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and f"{path}:4:" in lines[0] and "unknown type 'blok'" in lines[0], err


def test_python_m_cogsim_exits_2_without_traceback(write_arch):
    path = write_arch("")
    proc = subprocess.run([sys.executable, "-m", "cogsim", "check", str(path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    assert "the file is empty" in proc.stderr


def test_set_override_is_validated(tiny_arch):
    with pytest.raises(SpecError, match="parameter 'n_heads': expected an integer"):
        cogsim.load_architecture(tiny_arch, ["nodes.block1.n_heads=abc"])
    spec = cogsim.load_architecture(tiny_arch, ["model.d_model=64", "train.lr=0.01"])
    assert spec.model.d_model == 64 and spec.train.lr == 0.01


@dataclass
class PairParams:
    partner: str = ""


class Paired(Component):
    """Needs another node of the graph, named by a parameter: the plan hooks' contract."""

    type_name = "paired"
    Params = PairParams

    @classmethod
    def check_plan(cls, name, plan):
        if plan.nodes[name].params.partner not in plan.nodes:
            raise ValueError(f"partner {plan.nodes[name].params.partner!r} is not a node")

    def bind(self, name, plan, nodes):
        self.partner = nodes[self.params.partner]

    def forward(self, inputs, ctx):
        return {"out": inputs["x"] * 0}


def test_plan_hooks_check_the_node_in_its_graph_and_bind_it(write_arch):
    import cogsim.model

    reg = Registry()
    reg.register(Paired)
    text = HEADER + NODES + "  pair: {type: paired, partner: %s}\n" + "stack: [embed, block1, pair, block2, head]\n"
    with pytest.raises(SpecError) as info:
        build_plan(read_spec(write_arch(text % "blok2")), reg=reg)
    assert info.value.line == 7 and "node 'pair': partner 'blok2' is not a node" in str(info.value)
    model = cogsim.model.CognitiveModel(build_plan(read_spec(write_arch(text % "block2")), reg=reg))
    assert model.nodes["pair"].partner is model.nodes["block2"]


@pytest.mark.parametrize("nodes,found", [(NODES.replace("embed: {type: embedding}", "embed: {type: htm, columns: 64}"), 0),
                                         (NODES + "  embed2: {type: embedding}\n", 2)])
def test_a_tied_head_needs_exactly_one_embedding(write_arch, nodes, found):
    stack = STACK + ("edges: [embed2 -> block1]\n" if found else "")
    err = error_of(write_arch, HEADER + nodes + stack)
    line = nodes.splitlines().index("  head: {type: lm_head}") + 2
    assert err.line == line and f"'tie: true' needs exactly one embedding node, found {found}" in str(err)
