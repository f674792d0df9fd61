"""``cogsim nab``: the HTM detector over a NAB checkout, as NAB's users run a detector.

Reads ``data/<category>/<file>.csv`` and ``labels/combined_windows.json`` of the checkout, writes
``<out>/<detector>/<category>/<detector>_<file>.csv`` (timestamp,value,anomaly_score,raw_score,label:
NAB's results layout, so NAB's own scorer reads the folder as its ``results/``; ``raw_score`` is the
temporal memory's raw anomaly, as NuPIC's detector writes it), optimises one threshold per profile
over all files as NAB's optimiser does, and scores out of sample: the files in sorted order split into
two folds by position (0-based even and odd), each scored with the threshold chosen on the other. A
file that cannot be read is reported and skipped; the others still run.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable

import numpy as np

from cogsim.anomaly.csvio import write_scores
from cogsim.anomaly.files import PROFILES, make_folder, read_files, run_detector, stderr_warning
from cogsim.anomaly.nab import held_out_scores, load_windows, score_corpus
from cogsim.errors import CogsimError

LABELS = Path("labels") / "combined_windows.json"


def find_files(root: str | Path) -> tuple[list[str], Path]:
    """The checkout's data files as sorted ``category/file.csv`` names, and its labels file."""
    root = Path(root)
    if not root.is_dir():
        raise CogsimError(f"{root}: no such folder (expected a NAB checkout with data/ and labels/)")
    data = root / "data"
    if not data.is_dir():
        raise CogsimError(f"{root}: no data/ folder; is this a NAB checkout?")
    names = sorted(p.relative_to(data).as_posix() for p in data.glob("*/*.csv"))
    if not names:
        raise CogsimError(f"{data}: no data/<category>/<file>.csv files")
    labels = root / LABELS
    if not labels.is_file():
        raise CogsimError(f"{labels}: labels file not found")
    return names, labels


def result_path(out: str | Path, detector: str, name: str) -> Path:
    """NAB's results layout: ``<out>/<detector>/<category>/<detector>_<file>``."""
    category, _, file = name.rpartition("/")
    return Path(out) / detector / category / f"{detector}_{file}"


def label_column(timestamps: np.ndarray, windows) -> np.ndarray:
    """1 on rows whose timestamp lies in a window, as NAB's labeller marks them; else 0."""
    ts = np.asarray(timestamps).astype("datetime64[ns]")
    label = np.zeros(len(ts), dtype=np.int64)
    for start, end in windows:
        label[(ts >= np.datetime64(start, "ns")) & (ts <= np.datetime64(end, "ns"))] = 1
    return label


def run_checkout(root: str | Path, out: str | Path, config, detector: str = "cogsim", device=None,
                 quiet: bool = False, warn: Callable[[str], None] = stderr_warning) -> dict:
    """Run, write and score a NAB checkout; prints the scores and returns them (also written to
    ``<out>/<detector>/summary.json``)."""
    if not detector or "/" in detector or "_" in detector:
        raise CogsimError(f"--detector: {detector!r}: use a name without '/' or '_' (NAB splits file names on '_')")
    names, labels_path = find_files(root)
    windows = load_windows(labels_path)
    make_folder(Path(out) / detector)
    read = read_files([Path(root) / "data" / name for name in names], warn)
    kept, series = [names[i] for i, _ in read], [s for _, s in read]
    for name in kept:
        if name not in windows:
            warn(f"{labels_path}: no entry for {name}; scored as a series without anomalies")
    detections, seconds = run_detector(series, config, device=device, quiet=quiet)
    for name, (ts, values), det in zip(kept, series, detections):
        write_scores(result_path(out, detector, name), ts, values, det.score,
                     {"raw_score": det.raw, "label": label_column(ts, windows.get(name, []))})
    rows = sum(len(v) for _, v in series)
    print(f"scored {len(kept)} files, {rows:,} rows in {seconds:.1f} s ({rows / max(seconds, 1e-9):,.0f} rows/s) "
          f"→ {Path(out) / detector}")
    results = {name: (ts, det.score) for name, (ts, _), det in zip(kept, series, detections)}
    summary = {"detector": detector, "files": len(kept), "skipped": sorted(set(names) - set(kept)), "rows": rows,
               "seconds": round(seconds, 2), "config": dataclasses.asdict(config),
               "profiles": profile_scores(results, windows, names)}
    path = Path(out) / detector / "summary.json"
    path.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def profile_scores(results: dict, windows: dict, names: list[str], quiet: bool = False) -> dict:
    """Every profile's whole-corpus score (one threshold over all files), its out-of-sample scores
    (files in sorted order, even and odd positions, each scored with the other's threshold) and each
    fold's own best score; printed unless quiet."""
    folds = [[n for n in names[k::2] if n in results] for k in (0, 1)]
    out = {}
    for profile in PROFILES:
        whole = score_corpus(results, windows, profile=profile)
        if not quiet:
            print(whole.summary())
        entry = {"score": whole.score, "threshold": whole.threshold, "raw": whole.raw,
                 "windows_detected": whole.detected_windows, "windows": whole.windows}
        if all(folds):
            on_even, on_odd = held_out_scores(results, windows, folds, profile)
            mean = (on_odd.score + on_even.score) / 2
            if not quiet:
                print(f"  out of sample ({profile}): even-position files' threshold on the odd ones "
                      f"{on_odd.score:.2f}, odd-position files' threshold on the even ones {on_even.score:.2f}, "
                      f"mean {mean:.2f}")
            entry["out_of_sample"] = {"odd_scored": on_odd.score, "even_scored": on_even.score, "mean": mean}
            entry["in_fold"] = {key: score_corpus({n: results[n] for n in fold}, windows, profile=profile).score
                                for key, fold in zip(("even", "odd"), folds)}
        out[profile] = entry
    return out
