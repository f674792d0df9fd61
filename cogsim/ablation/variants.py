"""The variants of an ablation suite: the architecture as written, each memory system bypassed, the
plain transformer of the same sizes, and an Engram control whose tables hold almost nothing."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from cogsim.errors import CogsimError, SpecError
from cogsim.graph.ablate import memory_nodes, plain_transformer, remove_nodes
from cogsim.graph.build import build_plan
from cogsim.graph.spec import ArchSpec, read_spec

FULL, PLAIN, ENGRAM_MIN = "full", "plain", "engram_min"


@dataclass
class Variant:
    name: str
    description: str
    spec: ArchSpec


def _minimal_engram_overrides(spec: ArchSpec) -> list[str]:
    """``engram_vocab_size = [2, …]`` for every Engram node: each head gets one of the smallest
    primes (2, 3, 5, …) as its row count, so the tables can hold almost nothing."""
    plan = build_plan(spec)
    return [f"nodes.{n}.engram_vocab_size=[{', '.join(['2'] * (info.params.max_ngram_size - 1))}]"
            for n, info in plan.nodes.items() if info.type == "engram"]


def make_variants(arch: str | Path, overrides: list[str] | None = None, names: list[str] | None = None) -> list[Variant]:
    """The variants of the architecture file (with ``overrides`` applied to all of them): all of
    them, or the ``names`` given (``full`` is always first: it is the reference). Only the chosen
    variants are built, so a removal that breaks the graph matters only when it is asked for."""
    overrides = list(overrides or [])
    spec = read_spec(arch, overrides)
    build_plan(spec)
    memory = memory_nodes(spec)
    candidates: dict[str, tuple[str, Callable[[], ArchSpec]]] = {FULL: (f"{spec.name} as written", lambda: spec)}
    if len(memory) > 1:  # with one memory system, removing it is the plain transformer
        for node in memory:
            candidates[f"no_{node}"] = (f"without '{node}' ({spec.nodes[node].type}), bypassed",
                                        lambda node=node: remove_nodes(spec, [node], label=f"{spec.name}-without-{node}"))
    if memory:
        candidates[PLAIN] = (f"plain transformer of the same sizes (without {', '.join(memory)})",
                             lambda: plain_transformer(spec))
    minimal = _minimal_engram_overrides(spec)
    if minimal:
        def control() -> ArchSpec:
            out = read_spec(arch, overrides + minimal + [f"name={spec.name}-engram-minimal"])
            build_plan(out)
            return out
        candidates[ENGRAM_MIN] = ("Engram with minimal tables (the smallest primes as rows per head)", control)
    if names:
        unknown = [n for n in names if n not in candidates]
        if unknown:
            raise CogsimError(f"--variants: unknown variant {unknown[0]!r}; this architecture has "
                              f"{', '.join(candidates)}")
        chosen = [FULL] + [n for n in dict.fromkeys(names) if n != FULL]
    else:
        chosen = list(candidates)
    out = []
    for name in chosen:
        description, build = candidates[name]
        try:
            out.append(Variant(name, description, build()))
        except SpecError as e:
            raise CogsimError(f"variant {name}: {e} (leave it out with --variants)") from None
    return out


def with_seed(spec: ArchSpec, seed: int) -> ArchSpec:
    """``spec`` for a run of ``seed``: the model's initialisation and a synthetic task's data both
    follow it, as with ``cogsim run --seed`` (the task is built when the spec is read, so it is
    rebuilt here)."""
    task = spec.task.reseeded(seed) if spec.task is not None else None
    return dataclasses.replace(spec, train=dataclasses.replace(spec.train, seed=seed), task=task)
