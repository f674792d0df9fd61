"""``cogsim ablate ARCH``: train an architecture and its memory ablations over seeds (same data,
budget and seeds), then write a CSV, a markdown table and a comparison figure with mean ± std over
seeds and paired differences against the full architecture (95% CI). ``--suite`` reads the same
from a suite file, or, for a task suite, does it per task with the task's arms against its first
arm. Resumable: finished runs are skipped, interrupted ones continued."""
from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeElapsedColumn, \
    TimeRemainingColumn
import torch

from cogsim.ablation.runner import SuiteProgress, run_suite
from cogsim.ablation.suite import Suite, load_suite, task_variants
from cogsim.ablation.tables import LABELS, RUN_COLUMNS, SUMMARY_COLUMNS, digits, markdown, summarize, write_csv
from cogsim.ablation.variants import Variant, make_variants
from cogsim.commands.common import ReadableTable, console
from cogsim.errors import CogsimError
from cogsim.evaluate.probes import METRICS as PROBE_METRICS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("arch", nargs="?", help="architecture YAML file (default: the suite's architecture)")
    parser.add_argument("--suite", help="suite file: an architecture and its ablations "
                                        "(experiments/memory_ablations.yaml) or tasks with their arms "
                                        "(experiments/memory_tasks.yaml); options given here override it")
    parser.add_argument("--tasks", nargs="+", metavar="NAME",
                        help="a task suite's tasks to run (comma- or space-separated; default: all)")
    parser.add_argument("--seeds", help="number of seeds N (seeds 0..N-1) or a comma-separated list (default 3)")
    parser.add_argument("--steps", type=int, help="training steps of every run (train.steps)")
    parser.add_argument("--variants", nargs="+", metavar="NAME",
                        help="variants to run (comma- or space-separated; 'full' is always included), or a "
                             "task suite's arms (its first arm is always included); see --list")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a field of every variant, e.g. --set train.batch_size=8")
    parser.add_argument("--out", help="ablation folder holding one run folder per variant and seed "
                                      "(default: runs/ablate-<architecture>)")
    parser.add_argument("--results", help="also copy the tables and the figure into this folder (default: the "
                                          "suite's 'results' when the suite runs exactly as written)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:N")
    parser.add_argument("--jobs", type=int, help="runs trained at once, in worker processes with cpus/jobs "
                                                 "torch and kernel threads each (default: the suite's jobs, else 1)")
    parser.add_argument("--list", action="store_true", help="list the variants and runs, train nothing")
    parser.add_argument("--quiet", action="store_true", help="no progress display")


def _seeds(text: str | None, default: list[int]) -> list[int]:
    if text is None:
        return default
    try:
        if "," in text:
            seeds = [int(s) for s in text.split(",") if s.strip()]
        else:
            n = int(text)
            if n < 1:
                raise ValueError
            seeds = list(range(n))
    except ValueError:
        raise CogsimError(f"--seeds {text}: expected a positive count or a comma-separated list of integers") from None
    if len(set(seeds)) != len(seeds) or not seeds:
        raise CogsimError(f"--seeds {text}: seeds must be distinct")
    return seeds


def _progress(quiet: bool) -> tuple[SuiteProgress, Bar | None]:
    if quiet:
        return SuiteProgress(), None
    bar = Bar(TextColumn("[bold]{task.description:<22}"), BarColumn(), MofNCompleteColumn(),
              TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
              console=console(), transient=False)
    runs: dict[str, tuple[int, int]] = {}  # key → (bar task, last step counted)
    state = {"started": 0, "done": 0, "runs": 0}

    def suite_start(count, steps):
        state["runs"] = count
        bar.start()
        state["suite"] = bar.add_task("suite", total=max(steps, 1), info=f"{count} runs to train")

    def run_start(key, start, steps):
        state["started"] += 1
        runs[key] = (bar.add_task(key, total=steps, completed=start, info=""), start)

    def run_step(key, step, loss, tps):
        task, last = runs[key]
        bar.advance(state["suite"], step - last)
        runs[key] = (task, step)
        bar.update(task, completed=step, info=f"loss {loss:.3f}  {tps:,.0f} tok/s")

    def run_done(row, skipped):
        key = f"{row['variant']} seed {row['seed']}"
        if key in runs:
            bar.remove_task(runs.pop(key)[0])
        if not skipped:
            state["done"] += 1
            bar.update(state["suite"], info=f"{state['done']}/{state['runs']} runs done")
        probes = "  ".join(f"{m} {row[m]:.3f}" for m in PROBE_METRICS if row.get(m) is not None)
        what = "already done" if skipped else f"{row['seconds']:.0f} s"
        score = (f"task accuracy {row['task_accuracy']:.3f}" if row.get("task_accuracy") is not None
                 else f"val {row['val_bpb']:.4f} bits/byte")
        bar.console.print(f"{key}: {score}  {probes}  ({what})")

    return SuiteProgress(suite_start, run_start, run_step, run_done), bar


def _table(summary: list[dict], variants: list[str], title: str) -> ReadableTable:
    metrics = list(dict.fromkeys(r["metric"] for r in summary))
    cells = {(r["variant"], r["metric"]): r for r in summary}
    table = ReadableTable(title=title)
    table.add_column("variant")
    for m in metrics:
        table.add_column(f"{LABELS.get(m, m)} {'↓' if cells[(variants[0], m)]['better'] == 'lower' else '↑'}",
                         justify="right")
    for v in variants:
        row = []
        for m in metrics:
            c, d = cells.get((v, m)), digits(m)
            if c is None or c["n"] == 0:
                row.append("n/a")
                continue
            text = f"{c['mean']:.{d}f}" + (f" ± {c['std']:.{d}f}" if c["n"] > 1 else "")
            if v != variants[0] and c.get("diff_n", 0) > 0:
                text += f"\nΔ {c['diff']:+.{d}f}"
                if c["diff_n"] > 1:
                    star = "*" if c["ci_low"] > 0 or c["ci_high"] < 0 else ""
                    text += f" [{c['ci_low']:+.{d}f}, {c['ci_high']:+.{d}f}]{star}"
            row.append(text)
        table.add_row(v, *row)
    return table


def _budget(spec) -> str:
    t, m, d = spec.train, spec.model, spec.data
    seq_len = spec.task.seq_len if spec.task is not None else m.seq_len
    text = (f"{t.steps} steps × {t.batch_size} sequences × {seq_len} tokens per run "
            f"({t.steps * t.batch_size * seq_len:,} tokens), lr {t.lr}, ")
    if spec.task is not None:
        params = ", ".join(f"{k} {v}" for k, v in vars(spec.task.params).items() if v is not None)
        return text + f"synthetic task {spec.task.name} ({params}), fresh batches every step"
    return text + (f"{d.task_mix:.0%} of training windows from generated probe-task text, "
                   f"{d.probe_count} probe instances per task")


def _header(title: str, description: str, spec, seeds: list[int], rows: list[dict], elapsed: float,
            device: str, trained: int) -> str:
    train_s = sum(r["seconds"] or 0.0 for r in rows)
    lines = [f"# {title}", ""]
    if description:
        lines += [description.strip(), ""]
    finished = (f"the invocation that finished the suite trained {trained} of them in {elapsed / 60:.1f} min"
                if trained else "every run was already finished when these tables were written")
    lines += [f"Budget: {_budget(spec)}; seeds {', '.join(map(str, seeds))}.", "",
              f"Time: {train_s / 60:.1f} min of training loops over {len(rows)} runs; {finished}, on {device} "
              f"({os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads)."]
    return "\n".join(lines) + "\n"


def _names(args: argparse.Namespace, default: list[str] | None) -> list[str] | None:
    return [n for item in (args.variants or []) for n in item.split(",") if n.strip()] or default


def _compare(variants: list[Variant], seeds: list[int], out: Path, args: argparse.Namespace, jobs: int,
             title: str, description: str, caption: str) -> list[Path]:
    """Train (or pick up) every variant × seed under ``out``; write the tables and the figure there and
    print the table; returns the files written."""
    first = variants[0].spec
    progress, bar = _progress(args.quiet)
    trained, done = [], progress.on_run_done
    progress.on_run_done = lambda row, skipped: (trained.append(not skipped), done(row, skipped))
    t0 = time.perf_counter()
    try:
        rows = run_suite(variants, seeds, out, device=args.device, progress=progress, jobs=jobs)
    finally:
        if bar is not None:
            bar.stop()
    elapsed = time.perf_counter() - t0
    names = [v.name for v in variants]
    summary = summarize(rows, names)
    device = rows[0].get("device") or args.device
    header = _header(title, description, first, seeds, rows, elapsed, device, sum(trained))
    files = [write_csv(rows, RUN_COLUMNS, out / "runs.csv"),
             write_csv(summary, SUMMARY_COLUMNS, out / "ablation.csv")]
    (out / "ablation.md").write_text(markdown(summary, variants, seeds, header))
    files.append(out / "ablation.md")
    from cogsim.viz.ablation import plot_ablation

    files.append(plot_ablation(summary, rows, out / "ablation.png",
                               f"{caption}, {len(seeds)} seed{'s' if len(seeds) > 1 else ''} × "
                               f"{first.train.steps} steps"))
    console().print(_table(summary, names, f"{caption} ({len(seeds)} seeds; Δ = variant − {names[0]}, 95% CI)"))
    return files


def _copy(files: list[Path], results: str | Path) -> None:
    Path(results).mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copyfile(f, Path(results) / f.name)
    console().print(f"tables and figure copied to {results}")


def _as_written(args: argparse.Namespace) -> bool:
    """No option changing the output, the variants, the seeds or the budget: only a run of the suite
    exactly as written writes into its results folder (``--results`` always does)."""
    return not (args.out or args.variants or args.seeds or args.steps is not None or args.overrides or args.arch
                or args.tasks)


def _cli_overrides(args: argparse.Namespace) -> list[str]:
    return ([f"train.steps={args.steps}"] if args.steps is not None else []) + args.overrides


def run(args: argparse.Namespace) -> int:
    suite = load_suite(args.suite) if args.suite else None
    if suite is not None and suite.tasks:
        return _run_tasks(args, suite)
    if args.tasks:
        raise CogsimError("--tasks needs a task suite (--suite FILE with 'tasks:')")
    arch = args.arch or (suite.architecture if suite else None)
    if arch is None:
        raise CogsimError("give an architecture file (cogsim ablate ARCH) or --suite FILE")
    overrides = list(suite.overrides if suite else []) + _cli_overrides(args)
    seeds = _seeds(args.seeds, suite.seeds if suite else [0, 1, 2])
    variants = make_variants(arch, overrides, _names(args, suite.variants if suite else None))
    full = variants[0].spec
    out = Path(args.out or (suite.out if suite and suite.out else Path("runs") / f"ablate-{full.name}"))
    con = console()
    if args.list:
        for v in variants:
            con.print(f"{v.name:<14} {v.description}")
        con.print(f"{len(variants)} variants × {len(seeds)} seeds = {len(variants) * len(seeds)} runs of "
                  f"{full.train.steps} steps under {out}")
        return 0
    jobs = args.jobs or (suite.jobs if suite else 1)
    con.print(f"cogsim ablate: {full.name}, {len(variants)} variants × {len(seeds)} seeds → {out}"
              + (f" ({jobs} at a time)" if jobs > 1 else ""))
    files = _compare(variants, seeds, out, args, jobs, f"Memory ablations: {full.name}",
                     suite.description if suite else "", f"ablation: {full.name}")
    results = args.results or (suite.results if suite and _as_written(args) else None)
    if results:
        _copy(files, results)
    con.print(f"tables: {out / 'ablation.md'}, {out / 'ablation.csv'}, {out / 'runs.csv'}; figure: {out / 'ablation.png'}")
    return 0


def _run_tasks(args: argparse.Namespace, suite: Suite) -> int:
    """A task suite: per task, its arms over the seeds, compared with the first arm (the floor);
    per task a folder of tables and a figure, and one markdown file with every task's tables."""
    if args.arch:
        raise CogsimError(f"--suite {suite.file} is a task suite (its arms name their architecture files); "
                          "give no architecture file")
    known = [t.name for t in suite.tasks]
    picked = [n for item in (args.tasks or []) for n in item.split(",") if n.strip()]
    unknown = [n for n in picked if n not in known]
    if unknown:
        raise CogsimError(f"--tasks: the suite has no task {unknown[0]!r}; its tasks are {', '.join(known)}")
    tasks = [t for t in suite.tasks if not picked or t.name in picked]
    seeds = _seeds(args.seeds, suite.seeds)
    names = _names(args, suite.variants)
    arms = list(dict.fromkeys(a.name for t in tasks for a in t.arms))
    unknown = [n for n in names or [] if n not in arms]
    if unknown:
        raise CogsimError(f"--variants: no task picked has an arm {unknown[0]!r}; their arms are {', '.join(arms)}")
    plans = [(t, task_variants(t, suite.overrides, _cli_overrides(args), names)) for t in tasks]
    out = Path(args.out or suite.out or "runs/memory-tasks")
    con = console()
    if args.list:
        runs = 0
        for task, variants in plans:
            con.print(f"[bold]{task.name}[/bold]: {task.description}".rstrip(": "))
            for v in variants:
                con.print(f"  {v.name:<16} {v.description} ({v.spec.train.steps} steps)")
            runs += len(variants) * len(seeds)
        con.print(f"{len(plans)} tasks, {runs} runs ({len(seeds)} seeds) under {out}")
        return 0
    jobs = args.jobs or suite.jobs
    results = args.results or (suite.results if _as_written(args) else None)
    parts = [f"# Memory tasks", "", suite.description.strip(), ""] if suite.description else ["# Memory tasks", ""]
    for task, variants in plans:
        con.print(f"cogsim ablate: task {task.name}, {len(variants)} arms × {len(seeds)} seeds → {out / task.name}"
                  + (f" ({jobs} at a time)" if jobs > 1 else ""))
        files = _compare(variants, seeds, out / task.name, args, jobs, f"Task {task.name}", task.description,
                         f"task {task.name}")
        parts.append((out / task.name / "ablation.md").read_text().replace("# Task", "## Task", 1))
        if results:
            _copy(files, Path(results) / task.name)
    (out / "memory_tasks.md").write_text("\n".join(parts))
    if results:
        _copy([out / "memory_tasks.md"], results)
    con.print(f"tables: {out / 'memory_tasks.md'} and one folder per task under {out}")
    return 0
