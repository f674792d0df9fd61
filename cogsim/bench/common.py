"""Shared benchmark helpers: robust timing, machine description and CSV appending."""
from __future__ import annotations

import csv
import datetime as _dt
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterable

import torch

#: CSV files live here unless --csv says otherwise (relative to the current directory).
DEFAULT_DIR = Path("experiments") / "bench"


def sync(device: str | torch.device | None = None) -> None:
    """Wait for queued GPU work so wall-clock timings are honest."""
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def time_call(fn: Callable[[], object], *, repeat: int = 5, warmup: int = 1, number: int = 1,
              device: str | torch.device | None = None) -> float:
    """Median seconds per call of ``fn`` over ``repeat`` rounds of ``number`` calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        sync(device)
        times.append((time.perf_counter() - t0) / number)
    return statistics.median(times)


def time_pair(fn_a: Callable[[], object], fn_b: Callable[[], object], *, repeat: int = 7, warmup: int = 1,
              device: str | torch.device | None = None) -> tuple[float, float]:
    """Median seconds of two callables measured interleaved (A B A B …), so machine noise hits both."""
    for _ in range(warmup):
        fn_a(); fn_b()
    ta, tb = [], []
    for _ in range(repeat):
        for fn, out in ((fn_a, ta), (fn_b, tb)):
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            out.append(time.perf_counter() - t0)
    return statistics.median(ta), statistics.median(tb)


def git_revision() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def load_average() -> str:
    """The 1, 5 and 15-minute load averages and the CPU count, for a row's note (figures measured on
    a busy machine are worth little)."""
    try:
        return "load avg " + " ".join(f"{v:.2f}" for v in os.getloadavg()) + f" on {os.cpu_count()} cpus"
    except OSError:
        return "load avg unknown"


def machine() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"{platform.machine()} {os.cpu_count()} cpu"


def append_csv(path: str | Path, rows: Iterable[dict]) -> Path:
    """Append rows (dicts) to a CSV, writing the header when the file is new. Each row gets the
    date, git revision, machine and torch version so results stay comparable over time."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = {"date": _dt.datetime.now().isoformat(timespec="seconds"), "revision": git_revision(),
             "machine": machine(), "torch": torch.__version__}
    rows = [{**stamp, **r} for r in rows]
    if not rows:
        return path
    new = not path.exists() or path.stat().st_size == 0
    fields = list(dict.fromkeys(k for r in rows for k in r))  # union of every row's columns
    if not new:
        with path.open(newline="") as f:
            header = next(csv.reader(f), None)
        if header:
            fields = header + [k for k in fields if k not in header]
            if fields != header:  # a new column: rewrite with the wider header
                with path.open(newline="") as f:
                    old = list(csv.DictReader(f))
                rows = old + rows
                new = True
    with path.open("w" if new else "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerows(rows)
    return path


def add_csv_argument(parser, default_name: str) -> None:
    parser.add_argument("--csv", default=str(DEFAULT_DIR / default_name),
                        help=f"CSV to append results to (default: experiments/bench/{default_name})")


def parse_choices(text: str, allowed, option: str, what: str) -> list[str]:
    """A comma-separated option value as a list, every item one of ``allowed`` (else a one-line error)."""
    from cogsim.errors import CogsimError

    items = [p.strip() for p in text.split(",") if p.strip()]
    unknown = sorted(set(items) - set(allowed))
    if unknown:
        raise CogsimError(f"{option}: unknown {what} {unknown[0]!r}; choose from {', '.join(allowed)}")
    return items
