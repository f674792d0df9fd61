"""Training the runs of an ablation suite: every variant × seed is a normal run folder
``OUT/<variant>-seed<k>``; finished runs are skipped and interrupted ones resumed, so a suite can be
stopped and restarted. Runs go one after another or in worker processes that share the cores."""
from __future__ import annotations

import json
import multiprocessing
import os
import queue as queues
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from cogsim.ablation.tables import TASK_METRICS
from cogsim.ablation.variants import Variant, with_seed
from cogsim.errors import CogsimError
from cogsim.evaluate.probes import METRICS as PROBE_METRICS
from cogsim.graph.spec import ArchSpec
from cogsim.graph.yamlio import load_yaml
from cogsim.threads import share_cores, sharing_cores
from cogsim.train import checkpoint
from cogsim.train.trainer import Progress, Trainer


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


def _key(variant: str, seed: int) -> str:
    return f"{variant} seed {seed}"


def _train(spec: ArchSpec, run_dir: Path, device: str, key: str, report: Callable[..., None]) -> dict:
    """One run: resume its checkpoint if there is one; ``report(kind, key, *values)`` tells progress."""
    start = done_steps(run_dir)
    report("start", key, start, spec.train.steps)
    progress = Progress(on_step=lambda step, loss, tps: report("step", key, step, loss, tps))
    return Trainer(spec, run_dir, device=device, resume=start > 0, progress=progress).train()


def _exit_with(parent: int, every: float = 1.0) -> None:
    """Leave this process as soon as ``parent`` is no longer its parent: a suite killed outright
    (SIGTERM, SIGKILL) runs no cleanup, and its workers would train on, unseen, for the whole run."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(1)
    threading.Thread(target=watch, name="exit-with-suite", daemon=True).start()


_progress = None  # in a worker process: the queue that carries progress back to the suite


def _start_worker(progress, parent: int, jobs: int) -> None:
    """Initializer of a worker process (``jobs`` > 1): it ends with the suite, takes its share of the
    cores for torch and the native kernels (:func:`cogsim.threads.share_cores`) and keeps the queue
    it reports progress on (handed over at start, so no queue-manager process is needed)."""
    global _progress
    _exit_with(parent)
    share_cores(jobs)
    _progress = progress


def _train_in_worker(spec: ArchSpec, run_dir: Path, device: str, key: str) -> dict:
    return _train(spec, run_dir, device, key, lambda *message: _progress.put(message))


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
            summaries[i] = _train(spec, run_dir, device, _key(name, seed), lambda *m: _relay(m, progress))
            progress.on_run_done(result_row(name, seed, summaries[i]), False)
    else:
        _run_parallel(plan, todo, device, progress, jobs, summaries)
    return [result_row(name, seed, summaries[i]) for i, (name, seed, *_rest) in enumerate(plan)]


def _run_parallel(plan: list, todo: list[int], device: str, progress: SuiteProgress, jobs: int,
                  summaries: dict[int, dict]) -> None:
    ctx = multiprocessing.get_context("spawn")  # no fork after torch has started its thread pools
    messages, finished = ctx.Queue(), set()

    def relay_waiting() -> None:  # a run's last messages may come after its result: those are dropped
        while True:
            try:
                message = messages.get_nowait()
            except queues.Empty:
                return
            if message[1] not in finished:
                _relay(message, progress)

    with sharing_cores(jobs):  # workers start with the shared environment
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_start_worker,
                                 initargs=(messages, os.getpid(), jobs)) as pool:
            futures = {}
            for i in todo:
                name, seed, spec, run_dir, _ = plan[i]
                futures[pool.submit(_train_in_worker, spec, run_dir, device, _key(name, seed))] = i
            try:
                waiting = set(futures)
                while waiting:
                    done, waiting = wait(waiting, timeout=0.2, return_when=FIRST_COMPLETED)
                    relay_waiting()
                    for future in done:
                        i = futures[future]
                        summaries[i] = future.result()  # re-raises a worker's error here
                        finished.add(_key(plan[i][0], plan[i][1]))
                        progress.on_run_done(result_row(plan[i][0], plan[i][1], summaries[i]), False)
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
