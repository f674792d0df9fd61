"""Spec → checked networkx graph → execution plan.

Resolves each node's component class through the registry, types its parameters, resolves default
ports, checks every edge (known node and port, same kind and size), that loops carry a feedback
edge, that required inputs are fed and that every node reaches the single logits output.
"""
from __future__ import annotations

import difflib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from cogsim.component import Component, Port, Sizes
from cogsim.errors import SpecError
from cogsim.graph.params import build_params, spec_error
from cogsim.graph.spec import SOURCE, ArchSpec, EdgeSpec
from cogsim.graph.yamlio import line_of
from cogsim.registry import Registry, registry as default_registry

SOURCE_PORTS = {"ids": Port("ids")}


@dataclass
class NodeInfo:
    """A node with its component class, typed parameters and resolved ports."""

    name: str
    type: str
    cls: type[Component]
    params: Any
    inputs: dict[str, Port]
    outputs: dict[str, Port]
    line: int | None

    @property
    def main_input(self) -> str | None:
        return self.cls.main_input

    @property
    def main_output(self) -> str | None:
        return self.cls.main_output


@dataclass
class Plan:
    """What the model executes: nodes in order and, per node and input port, the edges feeding it."""

    spec: ArchSpec
    sizes: Sizes
    nodes: dict[str, NodeInfo]  # in execution order
    edges: list[EdgeSpec]  # ports resolved
    head: str
    graph: nx.MultiDiGraph
    incoming: dict[str, dict[str, list[EdgeSpec]]] = field(default_factory=dict)
    feedback_affected: set[str] = field(default_factory=set)

    @property
    def cycles(self) -> int:
        return self.spec.model.cycles


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _node_info(spec: ArchSpec, name: str, sizes: Sizes, reg: Registry) -> NodeInfo:
    node, file, where = spec.nodes[name], spec.file, f"node '{name}'"
    try:
        cls = reg.get(node.type)
    except KeyError:
        raise SpecError(f"unknown type {node.type!r}{_suggest(node.type, reg.names())}; "
                        f"known types: {', '.join(reg.names())}", file, node.line, where) from None
    except ImportError as e:
        raise SpecError(f"type {node.type!r} is not available here ({e})", file, node.line, where) from None
    params = build_params(cls.Params, node.params, file=file, where=where, line=node.line)
    try:
        inputs, outputs = cls.ports(params, sizes)
    except ValueError as e:
        raise spec_error(e, node.params, file, node.line, where) from None
    outputs = dict(outputs)
    if cls.residual and cls.main_output in outputs:
        outputs.setdefault("delta", outputs[cls.main_output])
    return NodeInfo(name, node.type, cls, params, dict(inputs), outputs, node.line)


def _resolve_edge(edge: EdgeSpec, nodes: dict[str, NodeInfo], file: str) -> EdgeSpec:
    def ports_of(name: str, side: str) -> tuple[dict[str, Port], str | None]:
        if name == SOURCE:
            if side == "in":
                raise SpecError(f"{SOURCE!r} is the model input and takes no edges", file, edge.line, "edge")
            return SOURCE_PORTS, "ids"
        if name not in nodes:
            raise SpecError(f"unknown node {name!r} in edge '{edge.label()}'{_suggest(name, nodes)}; "
                            f"nodes: {', '.join(nodes)}", file, edge.line, "edges")
        info = nodes[name]
        return (info.outputs, info.main_output) if side == "out" else (info.inputs, info.main_input)

    out_ports, out_main = ports_of(edge.src, "out")
    in_ports, in_main = ports_of(edge.dst, "in")
    sp, dp = edge.src_port or out_main, edge.dst_port or in_main
    for node, port, ports, side in ((edge.src, sp, out_ports, "output"), (edge.dst, dp, in_ports, "input")):
        if port is None:
            raise SpecError(f"node {node!r} has no main {side}; name the port ({', '.join(ports)})",
                            file, edge.line, "edges")
        if port not in ports:
            raise SpecError(f"node {node!r} has no {side} port {port!r}{_suggest(port, ports)}; "
                            f"its {side}s: {', '.join(ports) or 'none'}", file, edge.line, "edges")
    a, b = out_ports[sp], in_ports[dp]
    resolved = EdgeSpec(edge.src, sp, edge.dst, dp, edge.feedback, edge.line, edge.origin)
    if a.kind != b.kind or a.size != b.size:
        raise SpecError(f"port mismatch in '{resolved.label()}': {edge.src}.{sp} gives {a.describe()} "
                        f"but {edge.dst}.{dp} expects {b.describe()}", file, edge.line, "edges")
    return resolved


def build_plan(spec: ArchSpec, vocab_size: int | None = None, reg: Registry | None = None) -> Plan:
    """Check the spec against the components' ports and return the execution plan."""
    reg = reg or default_registry
    m, file = spec.model, spec.file
    task = spec.task  # a synthetic task brings its own vocabulary and sequence length
    sizes = Sizes(m.d_model, m.n_heads, task.seq_len if task else m.seq_len,
                  vocab_size or (task.vocab_size if task else m.vocab_size), m.window or 0)
    nodes = {name: _node_info(spec, name, sizes, reg) for name in spec.nodes}

    edges = [_resolve_edge(e, nodes, file) for e in spec.edges]
    seen: dict[tuple, EdgeSpec] = {}
    for e in edges:
        key = (e.src, e.src_port, e.dst, e.dst_port)
        if key in seen:
            raise SpecError(f"edge '{e.label()}' is given twice (also on line {seen[key].line})",
                            file, e.line, "edges")
        seen[key] = e
    # token-id inputs nobody wired read the model's tokens
    fed = {(e.dst, e.dst_port) for e in edges}
    for info in nodes.values():
        for port, p in info.inputs.items():
            if p.kind == "ids" and (info.name, port) not in fed:
                edges.append(EdgeSpec(SOURCE, "ids", info.name, port, False, info.line, "auto"))

    incoming: dict[str, dict[str, list[EdgeSpec]]] = {n: defaultdict(list) for n in nodes}
    for e in edges:
        incoming[e.dst][e.dst_port].append(e)
    for info in nodes.values():
        for port, p in info.inputs.items():
            feeding = incoming[info.name].get(port, [])
            if p.required and not feeding:
                raise SpecError(f"input {port!r} ({p.describe()}) is not connected; add an edge "
                                f"'<node>.<port> -> {info.name}.{port}'", file, info.line, f"node '{info.name}'")
            if len(feeding) > 1 and not p.multi and p.kind not in ("hidden", "signal"):
                raise SpecError(f"input {port!r} ({p.kind}) takes one edge, got {len(feeding)}: "
                                + ", ".join(f"'{e.label()}'" for e in feeding), file, feeding[1].line,
                                f"node '{info.name}'")
            if p.multi and p.required and feeding and all(e.feedback for e in feeding):
                raise SpecError(f"input {port!r} is fed only by feedback edges, so it would be empty on "
                                "the first cycle", file, feeding[0].line, f"node '{info.name}'")

    graph = nx.MultiDiGraph()
    graph.add_node(SOURCE, type="input")
    for info in nodes.values():
        graph.add_node(info.name, type=info.type)
    for e in edges:
        graph.add_edge(e.src, e.dst, src_port=e.src_port, dst_port=e.dst_port, feedback=e.feedback, line=e.line)

    forward = nx.DiGraph()
    forward.add_nodes_from(graph.nodes)
    forward.add_edges_from((e.src, e.dst) for e in edges if not e.feedback)
    try:
        loop = nx.find_cycle(forward)
    except nx.NetworkXNoCycle:
        loop = None
    if loop:
        names = [a for a, _ in loop] + [loop[0][0]]
        line = next((e.line for e in edges if (e.src, e.dst) == loop[-1] and not e.feedback), None)
        raise SpecError(f"loop without a feedback edge: {' -> '.join(names)}; mark one of its edges "
                        "'feedback: true' (it then carries the previous cycle's value)", file, line, "edges")

    feedback = [e for e in edges if e.feedback]
    if feedback and spec.model.cycles < 2:
        raise SpecError(f"feedback edge '{feedback[0].label()}' needs model.cycles ≥ 2 (it carries the "
                        "previous cycle's value); set cycles", file, feedback[0].line, "edges")
    if not feedback and spec.model.cycles > 1:
        raise SpecError(f"cycles: {spec.model.cycles} cycles but no edge is marked 'feedback: true', so every "
                        "cycle after the first would repeat the first; set cycles: 1 or add a feedback edge",
                        file, line_of(spec.raw.get("model"), "cycles", line_of(spec.raw, "model", 1)), "model")

    heads = [n for n, info in nodes.items() if any(p.kind == "logits" for p in info.outputs.values())]
    if len(heads) != 1:
        raise SpecError("expected exactly one node producing logits, found "
                        + (", ".join(heads) or "none"), file, getattr(spec.raw, "line", 1), "nodes")
    head = heads[0]
    reaches_head = nx.ancestors(graph, head) | {head}
    for name, info in nodes.items():
        if name not in reaches_head:
            raise SpecError(f"node {name!r} does not reach the output head {head!r}; connect its output "
                            "or remove it", file, info.line, f"node '{name}'")

    order_key = {n: i for i, n in enumerate(spec.nodes)}
    stack_rank = {e.dst: i for i, e in enumerate(spec.edges) if e.origin == "stack"}
    order = [n for n in nx.lexicographical_topological_sort(
        forward, key=lambda n: (stack_rank.get(n, -1 if n == SOURCE else len(stack_rank)), order_key.get(n, -1)))
        if n != SOURCE]
    affected: set[str] = set()
    for e in feedback:
        affected |= {e.dst} | nx.descendants(forward, e.dst)
    plan = Plan(spec, sizes, {n: nodes[n] for n in order}, edges, head, graph,
                {n: dict(v) for n, v in incoming.items()}, affected)
    for name, info in plan.nodes.items():
        try:
            info.cls.check_plan(name, plan)
        except ValueError as e:
            raise spec_error(e, spec.nodes[name].params, file, info.line, f"node '{name}'") from None
    return plan
