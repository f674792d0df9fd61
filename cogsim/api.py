"""The Python API for users and notebooks: load an architecture, build its model."""
from __future__ import annotations

from pathlib import Path

from cogsim.graph.build import Plan, build_plan
from cogsim.graph.spec import ArchSpec, read_spec
from cogsim.model import CognitiveModel


def load_architecture(path: str | Path, overrides: list[str] | None = None) -> ArchSpec:
    """Read and fully validate an architecture file (``overrides``: ``["model.d_model=128", …]``).

    Raises :class:`cogsim.errors.SpecError` naming file:line and field on any mistake.
    """
    spec = read_spec(path, overrides)
    build_plan(spec)
    return spec


def plan_of(path_or_spec: str | Path | ArchSpec, vocab_size: int | None = None,
            overrides: list[str] | None = None) -> Plan:
    spec = path_or_spec if isinstance(path_or_spec, ArchSpec) else read_spec(path_or_spec, overrides)
    return build_plan(spec, vocab_size=vocab_size)


def build_model(path_or_spec: str | Path | ArchSpec, vocab_size: int | None = None,
                overrides: list[str] | None = None) -> CognitiveModel:
    """Build the model of an architecture: ``model(ids [B,T] long) -> logits [B,T,vocab]``.

    ``vocab_size`` defaults to the file's ``model.vocab_size`` (pass the tokenizer's size).
    Traces: ``logits, traces = model.trace(ids)`` or ``with model.recording() as rec: model(ids)``.
    """
    return CognitiveModel(plan_of(path_or_spec, vocab_size, overrides))
