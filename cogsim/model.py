"""CognitiveModel: builds every node of a plan and executes it in order, for R cognitive cycles.

Feedback edges carry the previous cycle's value (nothing on the first cycle); nodes untouched by
feedback are computed once and reused. Residual components return a delta; the model adds it.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from cogsim.component import Component, Context
from cogsim.graph.build import Plan
from cogsim.graph.params import spec_error
from cogsim.graph.spec import SOURCE
from cogsim.trace import Recorder


class CognitiveModel(nn.Module):
    """The model of an architecture graph: ``forward(ids [B,T]) -> logits [B,T,vocab]``."""

    def __init__(self, plan: Plan) -> None:
        super().__init__()
        self.plan = plan
        self.nodes = nn.ModuleDict()
        for name, info in plan.nodes.items():
            try:
                self.nodes[name] = info.cls(info.params, plan.sizes)
            except ValueError as e:
                raise spec_error(e, plan.spec.nodes[name].params, plan.spec.file, info.line, f"node '{name}'") from None
        for name, comp in self.nodes.items():
            comp.bind(name, plan, self.nodes)
        self._recorder: Recorder | None = None

    # ---- introspection -----------------------------------------------------------------------
    def components(self) -> Iterator[tuple[str, Component]]:
        return iter(self.nodes.items())

    def sparse_parameters(self) -> set[int]:
        """ids of parameters that components update themselves (excluded from AdamW)."""
        return {id(p) for c in self.nodes.values() for p in c.sparse_parameters()}

    def attach_tokenizer(self, tokenizer) -> None:
        """Tell components the tokenizer in use (Engram derives its compressed vocabulary)."""
        for comp in self.nodes.values():
            comp.attach_tokenizer(tokenizer)

    def attach_run_dir(self, path) -> None:
        """Tell components where the run keeps its files (Engram's memory-mapped tables)."""
        for comp in self.nodes.values():
            comp.attach_run_dir(path)

    def prefetch(self, ids: torch.Tensor) -> None:
        for comp in self.nodes.values():
            comp.prefetch(ids)

    # ---- recording ---------------------------------------------------------------------------
    @contextmanager
    def recording(self, recorder: Recorder | None = None, **options) -> Iterator[Recorder]:
        """Record traces of every forward inside the block: ``with model.recording() as rec:``;
        ``rec.traces[node][name]`` holds tensors. Options go to :class:`~cogsim.trace.Recorder`."""
        rec = recorder or Recorder(**options)
        previous, self._recorder = self._recorder, rec
        try:
            yield rec
        finally:
            self._recorder = previous

    @torch.no_grad()
    def trace(self, ids: torch.Tensor, **options) -> tuple[torch.Tensor, dict]:
        """Run ``ids`` with recording on; returns (logits, traces)."""
        with self.recording(**options) as rec:
            logits = self(ids)
        return logits, rec.as_dict()

    # ---- execution ---------------------------------------------------------------------------
    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.dim() != 2 or ids.dtype != torch.long:
            raise ValueError(f"expected token ids as a LongTensor [B, T], got {tuple(ids.shape)} {ids.dtype}")
        self.prefetch(ids)
        plan, cycles = self.plan, self.plan.cycles
        previous: dict[tuple[str, str], torch.Tensor] = {}
        values: dict[tuple[str, str], torch.Tensor] = {}
        for cycle in range(cycles):
            ctx = Context(cycle=cycle, cycles=cycles, recorder=self._recorder)
            values = {(SOURCE, "ids"): ids}
            for name, info in plan.nodes.items():
                if cycle > 0 and name not in plan.feedback_affected:
                    values.update({k: v for k, v in previous.items() if k[0] == name})
                    continue
                inputs = self._gather_inputs(name, values, previous, cycle)
                ctx.node = name
                out = self.nodes[name](inputs, ctx)
                if info.cls.residual:
                    delta = out[info.main_output]
                    out = {**out, info.main_output: inputs[info.main_input] + delta, "delta": delta}
                for port, value in out.items():
                    values[(name, port)] = value
            previous = values
        return values[(plan.head, plan.nodes[plan.head].main_output)]

    def _gather_inputs(self, name, values, previous, cycle):
        """Values arriving at each input port; a feedback edge carries zeros on the first cycle so
        that multi inputs keep one entry per edge (candidate indices stay stable)."""
        inputs = {}
        ids = values[(SOURCE, "ids")]
        for port, edges in self.plan.incoming[name].items():
            spec = self.plan.nodes[name].inputs[port]
            feeds = []
            for e in edges:
                if not e.feedback:
                    feeds.append(values[(e.src, e.src_port)])
                elif cycle > 0:
                    feeds.append(previous[(e.src, e.src_port)])
                elif spec.multi or all(x.feedback for x in edges):
                    shape = ids.shape if spec.kind == "signal" else (*ids.shape, spec.size)
                    feeds.append(torch.zeros(shape, device=ids.device))
            if spec.multi:
                inputs[port] = feeds
            elif feeds:
                inputs[port] = feeds[0] if len(feeds) == 1 else torch.stack(feeds).sum(0)
        return inputs
