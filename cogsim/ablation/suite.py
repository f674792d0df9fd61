"""Suite files of ``cogsim ablate --suite``: what to train, over which seeds and budget, checked field
by field with file:line errors.

Two kinds, told apart by their keys:

- an **ablation suite** (``architecture:``): one architecture and its graph ablations
  (``experiments/memory_ablations.yaml``); the reference of the paired differences is ``full``;
- a **task suite** (``tasks:``): per synthetic task, arms given as architecture files with their
  own overrides (``experiments/memory_tasks.yaml``); the first arm of a task is its reference.

Overrides apply in order: the suite's ``steps`` and ``set``, then the task's, then the arm's, then
the command line's. Paths are relative to the repository root (the working directory).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from cogsim.ablation.variants import Variant
from cogsim.errors import CogsimError, SpecError
from cogsim.graph.build import build_plan
from cogsim.graph.spec import read_spec
from cogsim.graph.yamlio import line_of, load_yaml


@dataclass
class Arm:
    """One arm of a task: an architecture file and the overrides that make the arm."""

    name: str
    architecture: str
    overrides: list[str] = field(default_factory=list)
    description: str = ""


@dataclass
class SuiteTask:
    """A task of a task suite: its overrides (``data.task``, its parameters, the window…) and arms,
    the first of which is the reference of the paired differences."""

    name: str
    arms: list[Arm]
    overrides: list[str] = field(default_factory=list)
    description: str = ""


@dataclass
class Suite:
    """A suite file (``experiments/memory_ablations.yaml``, ``experiments/memory_tasks.yaml``)."""

    file: str
    architecture: str | None
    seeds: list[int]
    variants: list[str] | None = None
    overrides: list[str] = field(default_factory=list)
    out: str | None = None
    results: str | None = None
    description: str = ""
    jobs: int = 1
    tasks: list[SuiteTask] = field(default_factory=list)


SUITE_KEYS = {"architecture", "seeds", "variants", "steps", "set", "out", "results", "description", "jobs", "tasks"}
TASK_KEYS = {"description", "steps", "set", "arms"}
ARM_KEYS = {"architecture", "set", "description"}


def _mapping(raw, where: str, file: str, line: int | None) -> dict:
    if not isinstance(raw, dict):
        raise SpecError(f"{where} must be a mapping, got {raw!r}", file, line)
    return raw


def _known(raw: dict, keys: set[str], file: str, where: str = "") -> None:
    for key in raw:
        if key not in keys:
            raise SpecError(f"unknown field {key!r}; expected {', '.join(sorted(keys))}", file, line_of(raw, key),
                            where)


def _string(raw: dict, key: str, file: str, where: str = "") -> str | None:
    if key in raw and not isinstance(raw[key], str):
        raise SpecError(f"'{key}' must be a string, got {raw[key]!r}", file, line_of(raw, key), where)
    return raw.get(key)


def _overrides(raw: dict, file: str, where: str = "") -> list[str]:
    """``steps`` and ``set`` of one level as ``--set`` overrides."""
    out = []
    if "steps" in raw:
        steps = raw["steps"]
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
            raise SpecError(f"'steps' must be a positive integer, got {steps!r}", file, line_of(raw, "steps"), where)
        out.append(f"train.steps={steps}")
    sets = raw.get("set") or {}
    if not isinstance(sets, dict):
        raise SpecError("'set' must be a mapping of key.path: value (like --set)", file, line_of(raw, "set"), where)
    out += [f"{key}={json.dumps(value)}" for key, value in sets.items()]
    return out


def _arm(name: str, raw, file: str, line: int | None, task: str) -> Arm:
    where = f"task {task!r}, arm {name!r}"
    if isinstance(raw, str):
        return Arm(name, raw)
    raw = _mapping(raw, "an arm (an architecture file, or {architecture, set, description})", file, line)
    _known(raw, ARM_KEYS, file, where)
    if not isinstance(raw.get("architecture"), str):
        raise SpecError("'architecture' must name an architecture file", file, line_of(raw, "architecture", line),
                        where)
    return Arm(name, raw["architecture"], _overrides(raw, file, where), _string(raw, "description", file, where) or "")


def _task(name: str, raw, file: str, line: int | None) -> SuiteTask:
    where = f"task {name!r}"
    raw = _mapping(raw, f"task {name!r}", file, line)
    _known(raw, TASK_KEYS, file, where)
    arms = raw.get("arms")
    if not isinstance(arms, dict) or not arms:
        raise SpecError("'arms' must map arm names to architecture files (the first is the reference)", file,
                        line_of(raw, "arms", line), where)
    return SuiteTask(name, [_arm(str(a), v, file, line_of(arms, a, line), name) for a, v in arms.items()],
                     _overrides(raw, file, where), _string(raw, "description", file, where) or "")


def load_suite(path: str | Path) -> Suite:
    """Read and check a suite file; every mistake is a :class:`SpecError` at its line."""
    file = str(path)
    if not Path(path).exists():
        raise CogsimError(f"--suite {path}: no such file")
    raw = load_yaml(path)
    if not isinstance(raw, dict):
        raise SpecError("expected a mapping with architecture (or tasks), seeds, variants, steps, set, out, results",
                        file, 1)
    _known(raw, SUITE_KEYS, file)
    if ("architecture" in raw) == ("tasks" in raw):
        raise SpecError("give either 'architecture' (an ablation suite) or 'tasks' (a task suite)", file, 1)
    if "architecture" in raw and not isinstance(raw["architecture"], str):
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
    jobs = raw.get("jobs", 1)
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise SpecError(f"'jobs' must be a positive integer, got {jobs!r}", file, line_of(raw, "jobs"))
    tasks = []
    if "tasks" in raw:
        table = raw["tasks"]
        if not isinstance(table, dict) or not table:
            raise SpecError("'tasks' must map task names to {set, steps, arms}", file, line_of(raw, "tasks"))
        tasks = [_task(str(name), value, file, line_of(table, name)) for name, value in table.items()]
    return Suite(file, raw.get("architecture"), seeds, variants, _overrides(raw, file), _string(raw, "out", file),
                 _string(raw, "results", file), _string(raw, "description", file) or "", jobs, tasks)


def task_variants(task: SuiteTask, suite: list[str], extra: list[str] | None = None,
                  names: list[str] | None = None) -> list[Variant]:
    """The arms of ``task`` as variants, each read with the ``suite``'s overrides, then the task's, the
    arm's and ``extra`` (the command line's); only the arms in ``names`` if given (and the reference):
    a name the task lacks is skipped, so one list can pick each task's memory arm (the command checks
    that every name is some picked task's arm)."""
    chosen = [a for i, a in enumerate(task.arms) if i == 0 or not names or a.name in names]
    out = []
    for arm in chosen:
        spec = read_spec(arm.architecture, [*suite, *task.overrides, *arm.overrides, *(extra or [])])
        build_plan(spec)
        out.append(Variant(arm.name, arm.description or f"{spec.name}: {spec.description}".rstrip(": "), spec))
    return out


__all__ = ["Arm", "Suite", "SuiteTask", "load_suite", "task_variants"]
