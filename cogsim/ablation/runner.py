"""The ablation runner behind ``cogsim ablate`` (docs/design.md §9).

An architecture and its variants — each memory system removed (graph bypass), the plain transformer
of the same sizes, and an Engram control whose tables hold almost nothing — are trained on the same
data, budget and seeds (a seed fixes initialisation and the data order, the same for every variant,
so results pair by seed), then compared on validation bits per byte and every probe task: mean ±
standard deviation over seeds and the paired difference against the full architecture with a
Student-t 95% confidence interval. Every run is a normal run folder ``OUT/<variant>-seed<k>``;
finished runs are skipped and interrupted ones resumed, so a suite can be stopped and restarted.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import multiprocessing
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from cogsim.data.synthetic import TASKS
from cogsim.errors import CogsimError, SpecError
from cogsim.evaluate.probes import METRICS as PROBE_METRICS
from cogsim.evaluate.stats import mean_std, paired_difference
from cogsim.graph.ablate import memory_nodes, plain_transformer, remove_nodes
from cogsim.graph.build import build_plan
from cogsim.graph.spec import ArchSpec, read_spec
from cogsim.graph.yamlio import line_of, load_yaml
from cogsim.train import checkpoint
from cogsim.threads import share_cores, sharing_cores
from cogsim.train.trainer import Progress, Trainer

FULL, PLAIN, ENGRAM_MIN = "full", "plain", "engram_min"
#: what synthetic tasks add to a run's summary (:meth:`cogsim.data.synthetic.base.Task.report`)
TASK_METRICS = {name: direction for cls in TASKS.values() for name, (direction, _) in cls.report_metrics.items()}
#: (metric, direction): +1 higher is better, −1 lower is better
METRICS: tuple[tuple[str, int], ...] = (("val_bpb", -1), ("task_accuracy", +1), *TASK_METRICS.items(),
                                        *((m, +1) for m in PROBE_METRICS))
LABELS = {"val_bpb": "validation bits/byte", "task_accuracy": "synthetic task (answer accuracy)", "recall": "fact recall (accuracy)",
          "needle": "needle, multi-query (accuracy)", "vartrack": "variable tracking (accuracy)",
          "anomaly_lm": "anomaly AUC, LM surprisal", "anomaly_htm": "anomaly AUC, HTM signal",
          **{name: label for cls in TASKS.values() for name, (_, label) in cls.report_metrics.items()}}


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
    return dataclasses.replace(spec, train=dataclasses.replace(spec.train, seed=seed))


def run_dir_of(out: Path, variant: str, seed: int) -> Path:
    return Path(out) / f"{variant}-seed{seed}"


def _same_config(a: dict, b: dict) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def finished_summary(run_dir: Path, spec: ArchSpec) -> dict | None:
    """The summary of a finished run of exactly ``spec`` in ``run_dir``, None if it is not finished;
    an error if the folder holds a run of something else."""
    config_path, summary_path = run_dir / "config.yaml", run_dir / "summary.json"
    if not config_path.exists():
        return None
    saved = load_yaml(config_path)
    now = spec.resolved()
    strip = lambda c: {**c, "train": {k: v for k, v in dict(c.get("train", {})).items() if k != "steps"}}
    if not _same_config(strip(saved), strip(now)):
        raise CogsimError(f"{run_dir} holds a run of a different configuration; choose another --out "
                          "or remove that folder")
    if not summary_path.exists():
        return None
    summary = json.loads(summary_path.read_text())
    if summary.get("steps", 0) > spec.train.steps:
        raise CogsimError(f"{run_dir} was trained for {summary['steps']} steps, more than the {spec.train.steps} "
                          "asked; choose another --out or remove that folder")
    probes_due = spec.task is None and spec.data.probe_count > 0  # synthetic-task runs have no probes
    if summary.get("steps") != spec.train.steps or (probes_due and "probes" not in summary):
        return None
    return summary


def done_steps(run_dir: Path) -> int:
    """Steps already saved in a run folder's checkpoint (0 if none)."""
    found = checkpoint.find(run_dir)
    return json.loads((found / "state.json").read_text())["step"] if found else 0


@dataclass
class SuiteProgress:
    """Callbacks of the suite runner (all optional): the CLI draws a progress display with them.
    ``key`` names a run ("<variant> seed <k>"); with several jobs, runs overlap."""

    on_suite_start: Callable[[int, int], None] = lambda runs, pending_steps: None  # runs to train, steps to go
    on_run_start: Callable[[str, int, int], None] = lambda key, start_step, steps: None
    on_run_step: Callable[[str, int, float, float], None] = lambda key, step, loss, tokens_per_s: None
    on_run_done: Callable[[dict, bool], None] = lambda row, skipped: None  # skipped: finished earlier


def result_row(variant: str, seed: int, summary: dict) -> dict:
    row = {"variant": variant, "seed": seed, "run_dir": summary.get("run_dir", ""),
           "device": summary.get("device"), "parameters": summary.get("parameters"), "steps": summary.get("steps"),
           "seconds": summary.get("seconds"), "val_loss": summary.get("val_loss"), "val_bpb": summary.get("val_bpb"),
           "task_accuracy": summary.get("task_accuracy"), **{m: summary.get(m) for m in TASK_METRICS}}
    probes = summary.get("probes") or {}
    for metric in PROBE_METRICS:
        row[metric] = probes.get(metric)
    return row


def _train(spec: ArchSpec, run_dir: Path, device: str, key: str, report: Callable[..., None]) -> dict:
    """One run: resume its checkpoint if there is one; ``report(kind, key, *values)`` tells progress."""
    start = done_steps(run_dir)
    report("start", key, start, spec.train.steps)
    progress = Progress(on_step=lambda step, loss, tps: report("step", key, step, loss, tps))
    return Trainer(spec, run_dir, device=device, resume=start > 0, progress=progress).train()


def _train_in_worker(spec: ArchSpec, run_dir: Path, device: str, key: str, jobs: int, queue) -> dict:
    """Entry point of a worker process (``jobs`` > 1): its share of the cores for torch and the
    native kernels (:func:`cogsim.threads.share_cores`), progress by queue."""
    share_cores(jobs)
    return _train(spec, run_dir, device, key, lambda *message: queue.put(message))


def _relay(message: tuple, progress: SuiteProgress) -> None:
    kind, key, *values = message
    (progress.on_run_start if kind == "start" else progress.on_run_step)(key, *values)


def run_suite(variants: list[Variant], seeds: list[int], out: Path, device: str = "auto",
              progress: SuiteProgress | None = None, jobs: int = 1) -> list[dict]:
    """Train (or pick up) every variant × seed under ``out``; returns one result row per run, in
    variant-then-seed order. ``jobs`` > 1 trains that many runs at once in worker processes with
    usable CPUs // jobs threads each for torch and the native kernels (on a CPU, single-thread
    processes use the cores better than one process with several threads; every run is seeded the
    same either way)."""
    if jobs < 1:
        raise CogsimError(f"--jobs must be at least 1, got {jobs}")
    progress = progress or SuiteProgress()
    out = Path(out)
    plan = []
    for v in variants:
        for seed in seeds:
            spec, run_dir = with_seed(v.spec, seed), run_dir_of(out, v.name, seed)
            plan.append((v.name, seed, spec, run_dir, finished_summary(run_dir, spec)))
    pending = [p for p in plan if p[4] is None]
    progress.on_suite_start(len(pending), sum(p[2].train.steps - done_steps(p[3]) for p in pending))
    summaries: dict[int, dict] = {}
    for i, (name, seed, _, _, summary) in enumerate(plan):
        if summary is not None:
            summaries[i] = summary
            progress.on_run_done(result_row(name, seed, summary), True)
    todo = [i for i, p in enumerate(plan) if p[4] is None]
    if jobs == 1 or len(todo) <= 1:
        for i in todo:
            name, seed, spec, run_dir, _ = plan[i]
            summaries[i] = _train(spec, run_dir, device, f"{name} seed {seed}", lambda *m: _relay(m, progress))
            progress.on_run_done(result_row(name, seed, summaries[i]), False)
    else:
        _run_parallel(plan, todo, device, progress, jobs, summaries)
    return [result_row(name, seed, summaries[i]) for i, (name, seed, *_rest) in enumerate(plan)]


def _run_parallel(plan: list, todo: list[int], device: str, progress: SuiteProgress, jobs: int,
                  summaries: dict[int, dict]) -> None:
    ctx = multiprocessing.get_context("spawn")  # no fork after torch has started its thread pools
    with sharing_cores(jobs), ctx.Manager() as manager:  # workers start with the shared environment
        queue = manager.Queue()
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            futures = {}
            for i in todo:
                name, seed, spec, run_dir, _ = plan[i]
                futures[pool.submit(_train_in_worker, spec, run_dir, device, f"{name} seed {seed}", jobs,
                                    queue)] = i
            try:
                waiting = set(futures)
                while waiting:
                    done, waiting = wait(waiting, timeout=0.2, return_when=FIRST_COMPLETED)
                    while not queue.empty():
                        _relay(queue.get(), progress)
                    for future in done:
                        i = futures[future]
                        summaries[i] = future.result()  # re-raises a worker's error here
                        progress.on_run_done(result_row(plan[i][0], plan[i][1], summaries[i]), False)
            except BaseException:
                for future in futures:
                    future.cancel()
                raise


def summarize(rows: list[dict], variants: list[str], metrics=METRICS, confidence: float = 0.95) -> list[dict]:
    """Per variant and metric: n, mean, std over seeds, and the paired difference variant − reference
    (the first variant: ``full`` of an ablation, the floor of a task suite; mean, its std, the t
    interval) over the seeds both have. Metrics that are n/a everywhere (e.g. the HTM anomaly AUC of
    an architecture without HTM) are left out."""
    by = {(r["variant"], r["seed"]): r for r in rows}
    seeds = sorted({r["seed"] for r in rows})
    reference = variants[0]
    out = []
    for metric, direction in metrics:
        if all(r.get(metric) is None or not math.isfinite(r[metric]) for r in rows):
            continue
        ref = [by.get((reference, s), {}).get(metric) for s in seeds]
        for variant in variants:
            values = [by.get((variant, s), {}).get(metric) for s in seeds]
            mean, std, n = mean_std(values)
            row = {"variant": variant, "metric": metric, "better": "higher" if direction > 0 else "lower",
                   "n": n, "mean": mean, "std": std}
            if variant != reference:
                d = paired_difference(values, ref, confidence)
                row.update(diff=d.mean, diff_std=d.std, diff_n=d.n, ci_low=d.low, ci_high=d.high)
            else:
                row.update(diff=math.nan, diff_std=math.nan, diff_n=0, ci_low=math.nan, ci_high=math.nan)
            out.append(row)
    return out


SUMMARY_COLUMNS = ["variant", "metric", "better", "n", "mean", "std", "diff", "diff_std", "diff_n", "ci_low", "ci_high"]
RUN_COLUMNS = ["variant", "seed", "steps", "parameters", "seconds", "val_loss", "val_bpb", "task_accuracy",
               *TASK_METRICS, *PROBE_METRICS, "run_dir"]


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def write_csv(rows: list[dict], columns: list[str], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for row in rows:
            w.writerow([_cell(row.get(c)) for c in columns])
    tmp.replace(path)
    return path


def _fmt(x: float, digits: int, signed: bool = False) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def digits(metric: str) -> int:
    """Decimals shown for ``metric``: bits per byte 4, step counts 0, accuracies 3."""
    return 4 if metric == "val_bpb" else 0 if metric.endswith("_steps") else 3


def markdown(summary: list[dict], variants: list[Variant], seeds: list[int], header: str = "") -> str:
    """Two tables: mean ± std per variant and metric, and the paired difference against ``full``."""
    metrics = list(dict.fromkeys(r["metric"] for r in summary))
    cells = {(r["variant"], r["metric"]): r for r in summary}
    arrows = {m: ("↓" if d < 0 else "↑") for m, d in METRICS}
    names = [v.name for v in variants]
    lines = [header.rstrip(), ""] if header else []
    lines += [f"Mean ± standard deviation over {len(seeds)} seed(s) ({', '.join(map(str, seeds))}); "
              "↓ lower is better, ↑ higher is better.", ""]
    lines.append("| variant | " + " | ".join(f"{LABELS.get(m, m)} {arrows.get(m, '')}" for m in metrics) + " |")
    lines.append("|---|" + "---:|" * len(metrics))
    for name in names:
        row = []
        for m in metrics:
            c = cells.get((name, m))
            if c is None or not math.isfinite(c["mean"]):
                row.append("n/a")
                continue
            text = f"{_fmt(c['mean'], digits(m))} ± {_fmt(c['std'], digits(m))}"
            row.append(text + (f" ({c['n']} of {len(seeds)} seeds)" if c["n"] < len(seeds) else ""))
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    if len(names) > 1:
        conf = "95%"
        lines += ["", f"Paired difference variant − {names[0]} over the same seeds: mean [{conf} CI, Student t]; "
                  "* marks an interval that excludes 0.", ""]
        lines.append("| variant | " + " | ".join(f"Δ {LABELS.get(m, m)}" for m in metrics) + " |")
        lines.append("|---|" + "---:|" * len(metrics))
        for name in names:
            if name == names[0]:
                continue
            row = []
            for m in metrics:
                c = cells.get((name, m))
                if c is None or not math.isfinite(c["diff"]):
                    row.append("n/a")
                    continue
                d = digits(m)
                star = "*" if math.isfinite(c["ci_low"]) and (c["ci_low"] > 0 or c["ci_high"] < 0) else ""
                row.append(f"{_fmt(c['diff'], d, True)} [{_fmt(c['ci_low'], d, True)}, {_fmt(c['ci_high'], d, True)}]{star}")
            lines.append(f"| {name} | " + " | ".join(row) + " |")
    lines += ["", "Variants:", ""]
    lines += [f"- `{v.name}`: {v.description}" for v in variants]
    return "\n".join(lines) + "\n"


__all__ = ["ENGRAM_MIN", "FULL", "METRICS", "PLAIN", "RUN_COLUMNS", "SUMMARY_COLUMNS", "SuiteProgress",
           "Variant", "digits", "finished_summary", "make_variants", "markdown", "result_row", "run_suite",
           "summarize", "with_seed", "write_csv"]
