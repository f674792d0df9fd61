"""Ablation suite files (``experiments/memory_ablations.yaml``): the architecture, seeds, variants
and budget of a standard suite, checked field by field with file:line errors."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from cogsim.errors import CogsimError, SpecError
from cogsim.graph.yamlio import line_of, load_yaml


@dataclass
class Suite:
    """An ablation suite file (``experiments/memory_ablations.yaml``)."""

    file: str
    architecture: str
    seeds: list[int]
    variants: list[str] | None = None
    overrides: list[str] = field(default_factory=list)
    out: str | None = None
    results: str | None = None
    description: str = ""
    jobs: int = 1


SUITE_KEYS = {"architecture", "seeds", "variants", "steps", "set", "out", "results", "description", "jobs"}


def load_suite(path: str | Path) -> Suite:
    """Read and check a suite file; paths in it are relative to the repository root (the working
    directory), like the commands that take them."""
    file = str(path)
    if not Path(path).exists():
        raise CogsimError(f"--suite {path}: no such file")
    raw = load_yaml(path)
    if not isinstance(raw, dict):
        raise SpecError("expected a mapping with architecture, seeds, variants, steps, set, out, results", file, 1)
    for key in raw:
        if key not in SUITE_KEYS:
            raise SpecError(f"unknown field {key!r}; expected {', '.join(sorted(SUITE_KEYS))}", file, line_of(raw, key))
    if not isinstance(raw.get("architecture"), str):
        raise SpecError("'architecture' must name an architecture file", file, line_of(raw, "architecture", 1))
    seeds = raw.get("seeds", 3)
    if isinstance(seeds, int) and not isinstance(seeds, bool) and seeds > 0:
        seeds = list(range(seeds))
    if not (isinstance(seeds, list) and seeds and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
            and len(set(seeds)) == len(seeds)):
        raise SpecError(f"'seeds' must be a positive count or a list of distinct integers, got {seeds!r}", file,
                        line_of(raw, "seeds"))
    variants = raw.get("variants")
    if variants is not None and not (isinstance(variants, list) and all(isinstance(v, str) for v in variants)):
        raise SpecError(f"'variants' must be a list of variant names, got {variants!r}", file, line_of(raw, "variants"))
    overrides = []
    if "steps" in raw:
        if not isinstance(raw["steps"], int) or isinstance(raw["steps"], bool) or raw["steps"] < 1:
            raise SpecError(f"'steps' must be a positive integer, got {raw['steps']!r}", file, line_of(raw, "steps"))
        overrides.append(f"train.steps={raw['steps']}")
    sets = raw.get("set") or {}
    if not isinstance(sets, dict):
        raise SpecError("'set' must be a mapping of key.path: value (like --set)", file, line_of(raw, "set"))
    for key, value in sets.items():
        overrides.append(f"{key}={json.dumps(value)}")
    jobs = raw.get("jobs", 1)
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise SpecError(f"'jobs' must be a positive integer, got {jobs!r}", file, line_of(raw, "jobs"))
    for key in ("out", "results", "description"):
        if key in raw and not isinstance(raw[key], str):
            raise SpecError(f"'{key}' must be a string, got {raw[key]!r}", file, line_of(raw, key))
    return Suite(file, raw["architecture"], seeds, variants, overrides, raw.get("out"), raw.get("results"),
                 raw.get("description", ""), jobs)
