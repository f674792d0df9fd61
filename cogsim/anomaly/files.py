"""Score CSV time series files with the HTM detector and write one scored CSV per input (``cogsim
anomaly``); with labelled windows, rate the scores the NAB way."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

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
    from cogsim.anomaly.csvio import read_series, write_scores

    paths = [Path(f) for f in files]
    names = [p.name for p in paths]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise CogsimError(f"--out: two inputs would both be written as {dupes[0]}; rename one of them")
    windows = None
    if labels:
        from cogsim.anomaly.nab import load_windows, match_labels

        windows = match_labels([str(p) for p in paths], load_windows(labels))
    series = [read_series(p) for p in paths]
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
