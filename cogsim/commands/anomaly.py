"""``cogsim anomaly A.csv [B.csv …] --out DIR``: HTM anomaly scores for CSV time series.

Every file (``timestamp,value``) is one stream of a single batched HTM detector; each gets
``DIR/<file name>`` with ``timestamp,value,anomaly_score``. With ``--labels`` (NAB's
combined_windows.json format) the scores are also rated the NAB way, one threshold for all files.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from cogsim.errors import CogsimError

PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="CSV", help="time series with timestamp,value columns")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the scored CSVs")
    parser.add_argument("--labels", metavar="JSON", help="anomaly windows (NAB combined_windows.json) to score against")
    parser.add_argument("--profile", choices=(*PROFILES, "all"), default="all",
                        help="NAB application profile(s) reported with --labels (default: all)")
    parser.add_argument("--device", default=None, help="torch device for the SP/TM (default: cpu)")
    parser.add_argument("--no-spatial", action="store_true",
                        help="don't score values outside the range seen so far (±5%%) as anomalies")
    parser.add_argument("--raw", action="store_true", help="report the raw TM anomaly instead of the log-likelihood")
    parser.add_argument("--details", action="store_true", help="also write raw_score and likelihood columns")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a detector setting (a DetectorConfig field, e.g. columns=1024; values in YAML); repeatable")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def parse_settings(items: list[str]) -> dict:
    """``KEY=VALUE`` strings → typed DetectorConfig overrides (the ``--set`` dialect of every command)."""
    from cogsim.graph.overrides import settings_overrides
    from cogsim.htm.detector import DetectorConfig

    return settings_overrides(DetectorConfig, items)


def _progress(quiet: bool):
    """A rich progress bar over rows (a no-op context when quiet)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    if quiet:
        return None
    return Progress(TextColumn("[bold]HTM[/bold] rows"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), transient=False)


def run(args: argparse.Namespace) -> int:
    from cogsim.htm.csvio import read_series, write_scores
    from cogsim.htm.detector import DetectorConfig, detect

    paths = [Path(f) for f in args.files]
    names = [p.name for p in paths]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise CogsimError(f"--out: two inputs would both be written as {dupes[0]}; rename one of them")
    labels = None
    if args.labels:
        from cogsim.evaluate.nab import load_windows, match_labels

        labels = match_labels([str(p) for p in paths], load_windows(args.labels))
    try:
        config = DetectorConfig(**{"spatial_anomaly": not args.no_spatial, "use_likelihood": not args.raw,
                                   **parse_settings(args.set)})
    except ValueError as e:
        raise CogsimError(f"--set: {e}") from None
    series = [read_series(p) for p in paths]
    total = sum(len(v) for _, v in series)
    bar = _progress(args.quiet)
    t0 = time.perf_counter()
    if bar is None:
        detections = detect(series, config, device=args.device)
    else:
        with bar:
            task = bar.add_task("rows", total=total, rate="")

            def update(done: int, _total: int) -> None:
                rate = done / max(time.perf_counter() - t0, 1e-9)
                bar.update(task, completed=done, rate=f"{rate:,.0f} rows/s")

            detections = detect(series, config, device=args.device, progress=update)
    elapsed = time.perf_counter() - t0
    out = Path(args.out)
    for path, (ts, values), det in zip(paths, series, detections):
        extra = {"raw_score": det.raw, "likelihood": det.likelihood} if args.details else None
        write_scores(out / path.name, ts, values, det.score, extra)
    print(f"scored {len(paths)} series, {total:,} rows in {elapsed:.1f} s ({total / max(elapsed, 1e-9):,.0f} rows/s) "
          f"→ {out}")
    if labels is not None:
        from cogsim.evaluate.nab import score_corpus

        if not labels:
            raise CogsimError(f"{args.labels}: no labelled windows match any of the input file names")
        results = {str(p): (ts, det.score) for p, (ts, _), det in zip(paths, series, detections)}
        for profile in (PROFILES if args.profile == "all" else (args.profile,)):
            print(score_corpus(results, labels, profile=profile).summary())
    return 0
