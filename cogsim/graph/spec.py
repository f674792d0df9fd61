"""Architecture file → :class:`ArchSpec`: sections, nodes and edges checked field by field.

Port-level checks (types, sizes, loops) need the components' port declarations and happen in
:mod:`cogsim.graph.build`. Every error names file:line and the node or field.
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cogsim.data.synthetic import TASKS, Context, Task
from cogsim.errors import SpecError
from cogsim.graph import bundled
from cogsim.graph.overrides import apply_overrides
from cogsim.graph.params import build_params, params_to_dict, spec_error
from cogsim.graph.yamlio import LineDict, line_of, load_yaml
from cogsim.settings import DataSettings, ModelSettings, TrainSettings

TOP_LEVEL = {
    "name": "a short name for the architecture",
    "description": "one line saying what it is",
    "model": "global sizes (d_model, n_heads, seq_len, vocab_size, cycles, window)",
    "nodes": "a mapping node name → {type: …, parameters}",
    "stack": "a list of node names chained along the main stream",
    "edges": "a list of edges 'a.port -> b.port' or {from, to, feedback}",
    "train": "training settings",
    "data": "data settings (text corpus, or a synthetic task: {task: NAME, …its parameters})",
}
SOURCE = "tokens"  # the model's input node; its only port is `ids`
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENDPOINT = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_][A-Za-z0-9_]*))?\s*$")


@dataclass
class NodeSpec:
    name: str
    type: str
    params: dict  # raw parameter mapping (a LineDict), typed later by the component's Params
    line: int | None


@dataclass
class EdgeSpec:
    src: str
    src_port: str | None  # None: the source's main output
    dst: str
    dst_port: str | None  # None: the destination's main input
    feedback: bool = False
    line: int | None = None
    origin: str = "edges"  # "edges", "stack" or "auto"

    def label(self) -> str:
        a = f"{self.src}.{self.src_port}" if self.src_port else self.src
        b = f"{self.dst}.{self.dst_port}" if self.dst_port else self.dst
        return f"{a} -> {b}" + (" (feedback)" if self.feedback else "")


@dataclass
class ArchSpec:
    """A parsed architecture file. ``raw`` keeps the YAML tree (with --set overrides applied)."""

    file: str
    name: str
    description: str
    model: ModelSettings
    train: TrainSettings
    data: DataSettings
    nodes: dict[str, NodeSpec]
    edges: list[EdgeSpec]
    raw: dict = field(repr=False, default_factory=dict)
    task: Task | None = None  # the synthetic task of ``data.task`` (None: text)

    def resolved(self) -> dict:
        """A plain mapping with every default filled in (for the run folder's config.yaml)."""
        out = copy.deepcopy(_plain(self.raw))
        out["name"] = self.name
        out["model"] = params_to_dict(self.model)
        out["train"] = params_to_dict(self.train)
        out["data"] = params_to_dict(self.data) | (params_to_dict(self.task.params) if self.task else {})
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _expect_mapping(value: Any, file: str, line: int | None, where: str, what: str) -> LineDict:
    if not isinstance(value, dict):
        raise SpecError(f"expected {what}, got {type(value).__name__}", file, line, where)
    return value


def parse_endpoint(text: Any, file: str, line: int | None, where: str) -> tuple[str, str | None]:
    m = _ENDPOINT.match(text) if isinstance(text, str) else None
    if not m:
        raise SpecError(f"expected an endpoint 'node' or 'node.port', got {text!r}", file, line, where)
    return m.group(1), m.group(2)


def _parse_edge(item: Any, file: str, line: int | None) -> EdgeSpec:
    if isinstance(item, str):
        if "->" not in item:
            raise SpecError(f"expected an edge 'a.port -> b.port', got {item!r}", file, line, "edges")
        left, right = item.split("->", 1)
        src, sp = parse_endpoint(left, file, line, "edges")
        dst, dp = parse_endpoint(right, file, line, "edges")
        return EdgeSpec(src, sp, dst, dp, False, line)
    if isinstance(item, dict):
        unknown = set(item) - {"from", "to", "feedback"}
        if unknown:
            key = sorted(unknown)[0]
            raise SpecError(f"unknown edge field {key!r}; expected from, to, feedback", file,
                            line_of(item, key, line), "edges")
        for key in ("from", "to"):
            if key not in item:
                raise SpecError(f"edge is missing {key!r}", file, line, "edges")
        feedback = item.get("feedback", False)
        if not isinstance(feedback, bool):
            raise SpecError(f"edge field 'feedback': expected true or false, got {feedback!r}", file,
                            line_of(item, "feedback", line), "edges")
        src, sp = parse_endpoint(item["from"], file, line_of(item, "from", line), "edges")
        dst, dp = parse_endpoint(item["to"], file, line_of(item, "to", line), "edges")
        return EdgeSpec(src, sp, dst, dp, feedback, line)
    raise SpecError(f"expected an edge string or mapping, got {type(item).__name__}", file, line, "edges")


def _data_section(data: LineDict, file: str, line: int | None, model: ModelSettings,
                  train: TrainSettings) -> tuple[DataSettings, Task | None]:
    """``data:``: the text settings, or with ``task: NAME`` a synthetic task whose parameters sit
    beside them (``data: {task: mqar, pairs: 8}``) and are checked by the task's ``Params``."""
    task = data.get("task")
    if task is None:
        return build_params(DataSettings, data, file=file, where="data", line=line), None
    own = {f.name for f in dataclasses.fields(DataSettings)}
    parts = LineDict(), LineDict()
    for key, value in data.items():
        part = parts[0] if key in own else parts[1]
        part[key] = value
        part.lines[key] = line_of(data, key, line)
    settings = build_params(DataSettings, parts[0], file=file, where="data", line=line)
    task_line = line_of(data, "task", line)
    if settings.task not in TASKS:
        close = difflib.get_close_matches(str(settings.task), list(TASKS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SpecError(f"unknown task {settings.task!r}{hint}; known tasks: {', '.join(TASKS)}", file, task_line,
                        "data")
    cls = TASKS[settings.task]
    params = build_params(cls.Params, parts[1], file=file, where=f"data (task {settings.task})", line=task_line)
    try:
        return settings, cls(params, Context(model.seq_len, train.seed, train.steps))
    except ValueError as e:
        raise spec_error(e, parts[1], file, task_line, f"data (task {settings.task})") from None


def parse_spec(raw: Any, file: str) -> ArchSpec:
    """Check the sections of a loaded YAML tree and return the spec (without port checks)."""
    if not isinstance(raw, dict):
        raise SpecError(f"expected a mapping at the top level with keys {', '.join(TOP_LEVEL)}; "
                        f"got {type(raw).__name__}", file, getattr(raw, "line", 1) or 1)
    for key in raw:
        if key not in TOP_LEVEL:
            close = difflib.get_close_matches(str(key), list(TOP_LEVEL), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SpecError(f"unknown section {key!r}{hint}; expected {', '.join(TOP_LEVEL)}", file,
                            line_of(raw, key))
    sections = {}
    for key, cls in (("model", ModelSettings), ("train", TrainSettings), ("data", DataSettings)):
        value = raw.get(key) or LineDict()
        _expect_mapping(value, file, line_of(raw, key), key, "a mapping")
        if key != "data":
            sections[key] = build_params(cls, value, file=file, where=key, line=line_of(raw, key))
        else:
            sections[key], task = _data_section(value, file, line_of(raw, key), sections["model"], sections["train"])

    nodes_raw = raw.get("nodes")
    if not nodes_raw:
        raise SpecError("no nodes: expected a 'nodes:' mapping of node name → {type: …}", file,
                        line_of(raw, "nodes", 1))
    _expect_mapping(nodes_raw, file, line_of(raw, "nodes"), "nodes", "a mapping of node name → {type: …}")
    nodes: dict[str, NodeSpec] = {}
    for name, body in nodes_raw.items():
        line = line_of(nodes_raw, name)
        if not isinstance(name, str) or not _NAME.match(name):
            raise SpecError(f"invalid node name {name!r}: use letters, digits and _", file, line, "nodes")
        if name == SOURCE:
            raise SpecError(f"node name {SOURCE!r} is reserved for the model's token input", file, line, "nodes")
        body = _expect_mapping(body, file, line, f"node '{name}'", "a mapping with 'type' and parameters")
        if "type" not in body:
            raise SpecError("missing 'type'", file, line, f"node '{name}'")
        if not isinstance(body["type"], str):
            raise SpecError(f"'type' must be a string, got {body['type']!r}", file, line_of(body, "type", line),
                            f"node '{name}'")
        params = LineDict({k: v for k, v in body.items() if k != "type"})
        params.lines = {k: v for k, v in body.lines.items() if k != "type"}
        params.line = line
        nodes[name] = NodeSpec(name, body["type"], params, line)

    edges: list[EdgeSpec] = []
    stack = raw.get("stack")
    if stack is not None:
        if not isinstance(stack, list) or not all(isinstance(s, str) for s in stack):
            raise SpecError("expected a list of node names", file, line_of(raw, "stack"), "stack")
        chain = [SOURCE, *stack] if stack else []
        for i in range(len(chain) - 1):
            edges.append(EdgeSpec(chain[i], None, chain[i + 1], None, False, line_of(stack, i), "stack"))
    edges_raw = raw.get("edges")
    if edges_raw is not None:
        if not isinstance(edges_raw, list):
            raise SpecError("expected a list of edges", file, line_of(raw, "edges"), "edges")
        for i, item in enumerate(edges_raw):
            edges.append(_parse_edge(item, file, line_of(edges_raw, i)))
    if not edges:
        raise SpecError("no edges: give a 'stack:' list or an 'edges:' list", file, getattr(raw, "line", 1))
    name = raw.get("name", Path(file).stem)
    description = raw.get("description", "")
    for key, value in (("name", name), ("description", description)):
        if not isinstance(value, str):
            raise SpecError(f"'{key}' must be a string, got {value!r}", file, line_of(raw, key))
    return ArchSpec(file, name, description, sections["model"], sections["train"], sections["data"],
                    nodes, edges, raw, task)


def read_spec(path: str | Path, overrides: list[str] | None = None) -> ArchSpec:
    """Read an architecture file, or a bundled one by bare name (``engram_snn``), with overrides."""
    path = bundled.resolve(path)
    if not path.exists():
        raise SpecError(f"file not found{bundled.not_found_hint()}", str(path))
    raw = load_yaml(path)
    if isinstance(raw, dict):
        apply_overrides(raw, overrides, str(path), existing=("nodes",))
    return parse_spec(raw, str(path))


__all__ = ["ArchSpec", "EdgeSpec", "NodeSpec", "SOURCE", "parse_spec", "read_spec"]
