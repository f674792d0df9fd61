"""Graph ablations: remove nodes by bypassing them (docs/design.md §3).

A removed node's main input is routed to where its main output went, when the two ports have the
same kind and size; its other edges disappear. If that leaves a required input unfed, the error
says which removal caused it.
"""
from __future__ import annotations

import dataclasses

from cogsim.errors import SpecError
from cogsim.graph.build import build_plan
from cogsim.graph.spec import ArchSpec, EdgeSpec
from cogsim.graph.yamlio import LineDict
from cogsim.registry import registry


def _edges_raw(edges: list[EdgeSpec]) -> list:
    out = []
    for e in edges:
        a = f"{e.src}.{e.src_port}" if e.src_port else e.src
        b = f"{e.dst}.{e.dst_port}" if e.dst_port else e.dst
        out.append({"from": a, "to": b, "feedback": True} if e.feedback else f"{a} -> {b}")
    return out


def remove_nodes(spec: ArchSpec, names: list[str], label: str | None = None) -> ArchSpec:
    """A copy of ``spec`` without ``names`` (each bypassed where shapes allow)."""
    plan = build_plan(spec)
    for name in names:
        if name not in spec.nodes:
            raise SpecError(f"cannot remove {name!r}: no such node; nodes: {', '.join(spec.nodes)}", spec.file)
    edges = [e for e in plan.edges if e.origin != "auto"]
    for name in names:
        info = plan.nodes[name]
        main_in, main_out = info.main_input, info.main_output
        passthrough = (main_in and main_out and info.inputs[main_in].kind == info.outputs[main_out].kind
                       and info.inputs[main_in].size == info.outputs[main_out].size)
        sources = [e for e in edges if e.dst == name and e.dst_port == main_in and not e.feedback]
        rewired = []
        for e in edges:
            if e.dst == name:
                continue
            if e.src == name:
                if passthrough and e.src_port == main_out:
                    rewired += [dataclasses.replace(e, src=s.src, src_port=s.src_port, origin="ablation")
                                for s in sources]
                continue
            rewired.append(e)
        edges = rewired
    keep = {n: s for n, s in spec.nodes.items() if n not in names}
    model = spec.model
    if not any(e.feedback for e in edges) and model.cycles > 1:
        model = dataclasses.replace(model, cycles=1)
    raw = LineDict({k: v for k, v in spec.raw.items() if k not in ("nodes", "stack", "edges", "name", "model")})
    raw["name"] = label or f"{spec.name}-without-{'-'.join(names)}"
    raw["model"] = dataclasses.asdict(model)
    raw["nodes"] = {n: {"type": s.type, **s.params} for n, s in keep.items()}
    raw["edges"] = _edges_raw(edges)
    new = dataclasses.replace(spec, name=raw["name"], model=model, nodes=keep, edges=edges, raw=raw)
    try:
        build_plan(new)
    except SpecError as e:
        raise SpecError(f"removing {', '.join(names)} breaks the graph: {e.message}", spec.file, e.line,
                        e.where) from None
    return new


def memory_nodes(spec: ArchSpec) -> list[str]:
    """Nodes whose component is not part of the backbone (the memory systems)."""
    return [n for n, s in spec.nodes.items() if registry.get(s.type).__module__ != "cogsim.backbone"]


def plain_transformer(spec: ArchSpec) -> ArchSpec:
    """The same architecture with every memory system removed: the baseline of the same sizes."""
    return remove_nodes(spec, memory_nodes(spec), label=f"{spec.name}-plain-transformer")
