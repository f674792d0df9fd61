"""Score CSV time series files with the HTM detector and write one scored CSV per input (``cogsim
anomaly``); with labelled windows, rate the scores the NAB way."""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable, Sequence

from cogsim.anomaly.nab import PROFILES as COSTS
from cogsim.errors import CogsimError

PROFILES = tuple(COSTS)  # NAB's application profiles, in NAB's order


def progress_bar(quiet: bool):
    """A rich progress bar over rows (None when quiet)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    if quiet:
        return None
    return Progress(TextColumn("[bold]HTM[/bold] rows"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), transient=False)


def run_detector(series, config, device=None, quiet: bool = True):
    """``detect`` with a progress bar unless quiet; returns (detections, seconds)."""
    from cogsim.anomaly.detector import detect

    bar = progress_bar(quiet)
    t0 = time.perf_counter()
    if bar is None:
        return detect(series, config, device=device), time.perf_counter() - t0
    with bar:
        task = bar.add_task("rows", total=sum(len(v) for _, v in series), rate="")

        def update(done: int, _total: int) -> None:
            rate = done / max(time.perf_counter() - t0, 1e-9)
            bar.update(task, completed=done, rate=f"{rate:,.0f} rows/s")

        detections = detect(series, config, device=device, progress=update)
    return detections, time.perf_counter() - t0


def stderr_warning(message: str) -> None:
    """A one-line warning on stderr."""
    print(f"warning: {message}", file=sys.stderr)


def read_files(paths: Sequence[Path], warn: Callable[[str], None] = stderr_warning) -> list[tuple[int, tuple]]:
    """(position, (timestamps, values)) of every file that can be read; each one that cannot is
    reported through ``warn`` and skipped, and so are rows earlier than the row before (read in file
    order). None readable: the error (one file) or a summary of them."""
    from cogsim.anomaly.csvio import read_series

    out, errors = [], []
    for i, path in enumerate(paths):
        try:
            out.append((i, read_series(path, warn=warn)))
        except CogsimError as e:
            errors.append(e)
            if len(paths) > 1:
                warn(f"{e} (file skipped)")
    if not out:
        raise errors[0] if len(errors) == 1 else CogsimError(f"none of the {len(paths)} input files could be read")
    return out


def make_folder(path: str | Path) -> None:
    """Create an output folder before the work starts, or fail in one line."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CogsimError(f"--out: {path}: cannot create the folder ({e.strerror or e})") from None


def make_config(overrides: dict, spatial: bool = True, likelihood: bool = True):
    """The detector configuration: defaults, the two switches, then ``overrides`` (field → value)."""
    from cogsim.anomaly.detector import DetectorConfig

    try:
        return DetectorConfig(**{"spatial_anomaly": spatial, "use_likelihood": likelihood, **overrides})
    except ValueError as e:
        raise CogsimError(f"--set: {e}") from None


def score_files(files: Sequence[str], out: str, config, labels: str | None = None, profiles=PROFILES,
                device=None, details: bool = False, quiet: bool = False) -> int:
    """Read every file, run them as one batch, write ``out/<file name>``; print the throughput and,
    with ``labels`` (NAB's combined_windows.json), the NAB score per profile."""
    from cogsim.anomaly.csvio import write_scores

    paths = [Path(f) for f in files]
    names = [p.name for p in paths]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise CogsimError(f"--out: two inputs would both be written as {dupes[0]}; rename one of them")
    windows = None
    if labels:
        from cogsim.anomaly.nab import load_windows, match_labels

        windows = match_labels([str(p) for p in paths], load_windows(labels))
    make_folder(out)
    read = read_files(paths)
    paths, series = [paths[i] for i, _ in read], [s for _, s in read]
    total = sum(len(v) for _, v in series)
    detections, elapsed = run_detector(series, config, device=device, quiet=quiet)
    folder = Path(out)
    for path, (ts, values), det in zip(paths, series, detections):
        extra = {"raw_score": det.raw, "likelihood": det.likelihood} if details else None
        write_scores(folder / path.name, ts, values, det.score, extra)
    print(f"scored {len(paths)} series, {total:,} rows in {elapsed:.1f} s ({total / max(elapsed, 1e-9):,.0f} rows/s) "
          f"→ {folder}")
    if windows is not None:
        from cogsim.anomaly.nab import score_corpus

        if not windows:
            raise CogsimError(f"{labels}: no labelled windows match any of the input file names")
        results = {str(p): (ts, det.score) for p, (ts, _), det in zip(paths, series, detections)}
        for profile in profiles:
            print(score_corpus(results, windows, profile=profile).summary())
    return 0
