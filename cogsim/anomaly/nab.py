"""NAB-style scoring of anomaly scores against labelled anomaly windows (the Numenta Anomaly
Benchmark's scorer, usable on any labelled set of series).

Windows around labelled anomalies, earliest detections weighted by a scaled sigmoid, one threshold
for the whole corpus, scores normalised between a null detector (0) and a perfect one (100); the
rules are in docs/design.md §5.2.5.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from cogsim.errors import CogsimError


@dataclass(frozen=True)
class CostMatrix:
    tp: float
    fp: float
    fn: float
    tn: float = 1.0


#: NAB's application profiles (config/profiles.json).
PROFILES: dict[str, CostMatrix] = {
    "standard": CostMatrix(tp=1.0, fp=0.11, fn=1.0),
    "reward_low_FP_rate": CostMatrix(tp=1.0, fp=0.22, fn=1.0),
    "reward_low_FN_rate": CostMatrix(tp=1.0, fp=0.11, fn=2.0),
}

PROBATION_PERCENT = 0.15
WINDOW_FRACTION = 0.10


def scaled_sigmoid(position) -> np.ndarray:
    """NAB's S(p) = 2·sigmoid(−5p) − 1, and −1 for p > 3 (far past a window)."""
    p = np.asarray(position, dtype=np.float64)
    return np.where(p > 3.0, -1.0, 2.0 / (1.0 + np.exp(5.0 * np.minimum(p, 3.0))) - 1.0)


def probationary_length(n_rows: int, probation_percent: float = PROBATION_PERCENT) -> int:
    """Rows at the start of a series that are not scored: min(floor(pct·n), pct·5000)."""
    return int(min(math.floor(probation_percent * n_rows), probation_percent * 5000))


def windows_to_indices(timestamps: np.ndarray, windows: Sequence[tuple]) -> list[tuple[int, int]]:
    """(start, end) timestamp windows → inclusive row-index windows, sorted; windows containing no
    row are dropped. Rows are taken in file order, as NAB's sweeper walks them: a window opens at the
    first row stamped ``start`` and closes at the first row after it stamped ``end`` (NAB's labels
    name rows), so a row going back in time does not move it. Limits that name no row: from the
    first row ≥ start to the row before the next row > end (for rows in time order, the last ≤ end)."""
    ts = np.asarray(timestamps).astype("datetime64[ns]")
    out = []
    for start, end in windows:
        start, end = np.datetime64(start, "ns"), np.datetime64(end, "ns")
        begun = np.flatnonzero(ts == start)
        if not len(begun):
            begun = np.flatnonzero(ts >= start)
            if not len(begun):
                continue
        lo = int(begun[0])
        closing = np.flatnonzero(ts[lo:] == end)
        if len(closing):
            hi = lo + int(closing[0])
        else:
            past = np.flatnonzero(ts[lo:] > end)
            hi = lo + (int(past[0]) if len(past) else len(ts) - lo) - 1
        if hi >= lo:
            out.append((lo, hi))
    return sorted(out)


def windows_from_anomalies(n_rows: int, anomaly_rows: Sequence[int],
                           window_fraction: float = WINDOW_FRACTION) -> list[tuple[int, int]]:
    """NAB's labeller: a window of ``int(fraction·n / n_anomalies)`` rows centred on each labelled
    anomaly row (clipped to the series), overlapping windows merged."""
    rows = sorted(int(a) for a in anomaly_rows)
    if not rows:
        return []
    length = int(window_fraction * n_rows / len(rows))
    merged: list[list[int]] = []
    for a in rows:
        lo, hi = max(a - length // 2, 0), min(a + length // 2, n_rows - 1)
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return [(lo, hi) for lo, hi in merged]


def row_weights(n_rows: int, windows: Sequence[tuple[int, int]], cost: CostMatrix,
                probation_percent: float = PROBATION_PERCENT) -> tuple[np.ndarray, np.ndarray]:
    """Per-row score a detection would earn, and the row's window id (−1 outside every window,
    −2 probationary). ``windows`` are sorted, non-overlapping inclusive index pairs."""
    weight = np.empty(n_rows)
    window_id = np.full(n_rows, -1, dtype=np.int64)
    idx = np.arange(n_rows)
    max_tp = float(scaled_sigmoid(-1.0))
    # Outside windows: relative to the closest preceding window (or −A_FP before the first).
    weight[:] = -cost.fp
    for k, (lo, hi) in enumerate(windows):
        width = hi - lo + 1
        inside = slice(lo, hi + 1)
        window_id[inside] = k
        weight[inside] = scaled_sigmoid(-(hi - idx[inside] + 1) / width) * cost.tp / max_tp
        nxt = windows[k + 1][0] if k + 1 < len(windows) else n_rows
        after = slice(hi + 1, nxt)
        weight[after] = scaled_sigmoid(np.abs(idx[after] - hi) / max(width - 1, 1)) * cost.fp
    window_id[: probationary_length(n_rows, probation_percent)] = -2
    return weight, window_id


@dataclass
class Sweep:
    """Corpus score at every candidate threshold (descending), from :func:`sweep`."""

    thresholds: np.ndarray
    scores: np.ndarray
    detected_windows: np.ndarray
    false_positive_rows: np.ndarray
    n_windows: int

    def best(self) -> int:
        """Index of the best threshold (the highest one among equal scores, like NAB's max())."""
        return int(np.argmax(self.scores))

    def at(self, threshold: float) -> int:
        """Index of the state for detections ``score ≥ threshold``."""
        return max(int(np.searchsorted(-self.thresholds, -threshold, side="right")) - 1, 0)


def sweep(series: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], cost: CostMatrix) -> Sweep:
    """Score every threshold at once. ``series``: (scores, weights, window ids) per series, the last
    two from :func:`row_weights`. Threshold ``thresholds[0]`` (above every score) detects nothing."""
    scores, weights, wids = [], [], []
    offset = 0
    for s, w, wid in series:
        keep = wid != -2
        scores.append(np.asarray(s, dtype=np.float64)[keep])
        weights.append(w[keep])
        wids.append(np.where(wid[keep] >= 0, wid[keep] + offset, -1))
        offset += int(wid.max(initial=-1)) + 1
    score = np.concatenate(scores) if scores else np.zeros(0)
    weight = np.concatenate(weights) if weights else np.zeros(0)
    wid = np.concatenate(wids) if wids else np.zeros(0, dtype=np.int64)
    n_windows = len(np.unique(wid[wid >= 0]))  # windows with at least one scorable row
    order = np.argsort(-score, kind="stable")
    score, weight, wid = score[order], weight[order], wid[order]
    # Each row's change of the total when it becomes a detection.
    delta = np.where(wid < 0, weight, 0.0)
    new_window = np.zeros(len(score), dtype=np.int64)
    inside = np.nonzero(wid >= 0)[0]
    if len(inside):
        grp = wid[inside]
        by_window = np.argsort(grp, kind="stable")  # rows of each window, in descending-score order
        rows, g = inside[by_window], grp[by_window]
        starts = np.r_[0, np.nonzero(np.diff(g))[0] + 1]
        best = weight[rows].copy()
        for a, b in zip(starts, np.r_[starts[1:], len(rows)]):
            best[a:b] = np.maximum.accumulate(best[a:b])
        first = np.zeros(len(rows), dtype=bool)
        first[starts] = True
        prev = np.empty(len(rows))
        prev[1:] = best[:-1]
        prev[first] = -cost.fn
        delta[rows] = best - prev
        new_window[rows[first]] = 1
    total = -cost.fn * n_windows + np.cumsum(delta)
    det = np.cumsum(new_window)
    fp = np.cumsum(wid < 0)
    # One state per distinct score: after all rows with that score are in.
    last = np.r_[np.nonzero(np.diff(score))[0], len(score) - 1] if len(score) else np.zeros(0, dtype=np.int64)
    top = float(np.nextafter(score[0], np.inf)) if len(score) else 1.1  # just above every score
    return Sweep(thresholds=np.r_[top, score[last]], scores=np.r_[-cost.fn * n_windows, total[last]],
                 detected_windows=np.r_[0, det[last]], false_positive_rows=np.r_[0, fp[last]], n_windows=n_windows)


@dataclass
class NABResult:
    """Normalised corpus score (null = 0, perfect = 100) and how it was reached."""

    profile: str
    score: float
    raw: float
    null: float
    perfect: float
    threshold: float
    windows: int
    detected_windows: int
    false_positive_rows: int
    per_series: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        return (f"NAB {self.profile}: {self.score:.2f} (raw {self.raw:.3f}, null {self.null:.3f}, "
                f"perfect {self.perfect:.1f}; threshold {self.threshold:.6g}; windows detected "
                f"{self.detected_windows}/{self.windows}; false-positive rows {self.false_positive_rows})")


def score_corpus(results: Mapping[str, tuple[np.ndarray, np.ndarray]],
                 windows: Mapping[str, Sequence[tuple]], profile: str = "standard",
                 threshold: float | None = None, probation_percent: float = PROBATION_PERCENT) -> NABResult:
    """Score a corpus. ``results``: name → (timestamps datetime64 [n], anomaly scores [n]);
    ``windows``: name → list of (start, end) timestamps (NAB's combined_windows.json). Series in
    ``results`` without an entry in ``windows`` have no anomalies. ``threshold=None`` optimises one
    threshold over the whole corpus."""
    if profile not in PROFILES:
        raise CogsimError(f"profile: unknown NAB profile {profile!r} (choose from {', '.join(PROFILES)})")
    cost = PROFILES[profile]
    parts, nulls, names = [], [], []
    total_windows = 0
    for name, (ts, sc) in results.items():
        sc = np.asarray(sc, dtype=np.float64)
        if len(ts) != len(sc):
            raise CogsimError(f"{name}: {len(ts)} timestamps but {len(sc)} scores")
        win = windows_to_indices(np.asarray(ts), windows.get(name, []))
        total_windows += len(windows.get(name, []))
        w, wid = row_weights(len(sc), win, cost, probation_percent)
        parts.append((sc, w, wid))
        nulls.append((np.zeros(len(sc)), w, wid))
        names.append(name)
    sw = sweep(parts, cost)
    i = sw.best() if threshold is None else sw.at(threshold)
    null_sweep = sweep(nulls, cost)
    null = float(null_sweep.scores[null_sweep.best()])
    perfect = cost.tp * total_windows
    raw = float(sw.scores[i])
    thr = float(sw.thresholds[i]) if threshold is None else float(threshold)
    per = {}
    for name, part in zip(names, parts):
        s = sweep([part], cost)
        per[name] = float(s.scores[s.at(thr)])
    denom = perfect - null
    norm = 100.0 * (raw - null) / denom if denom > 0 else 0.0
    return NABResult(profile=profile, score=norm, raw=raw, null=null, perfect=perfect, threshold=thr,
                     windows=sw.n_windows, detected_windows=int(sw.detected_windows[i]),
                     false_positive_rows=int(sw.false_positive_rows[i]), per_series=per)


def load_windows(path: str | Path) -> dict[str, list[tuple[np.datetime64, np.datetime64]]]:
    """Read NAB's ``combined_windows.json``: {"dir/file.csv": [["start", "end"], …], …}."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise CogsimError(f"{path}: labels file not found") from None
    except (IsADirectoryError, UnicodeDecodeError):
        raise CogsimError(f"{path}: not a JSON text file") from None
    except json.JSONDecodeError as e:
        raise CogsimError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(data, dict):
        raise CogsimError(f"{path}: expected an object mapping file names to lists of [start, end] windows")
    out: dict[str, list[tuple[np.datetime64, np.datetime64]]] = {}
    for name, wins in data.items():
        if not isinstance(wins, list):
            raise CogsimError(f"{path}: {name}: expected a list of [start, end] windows")
        parsed = []
        for k, win in enumerate(wins):
            if not (isinstance(win, list) and len(win) == 2):
                raise CogsimError(f"{path}: {name}: window {k}: expected [start, end]")
            try:
                parsed.append((np.datetime64(str(win[0]).strip()), np.datetime64(str(win[1]).strip())))
            except ValueError:
                raise CogsimError(f"{path}: {name}: window {k}: unparsable timestamp in {win}") from None
        out[name] = parsed
    return out


def match_labels(names: Sequence[str], labels: Mapping[str, list]) -> dict[str, list]:
    """Windows for each series name: the label key equal to the name, or the one the name ends with
    (``data/realKnownCause/x.csv`` ↔ ``realKnownCause/x.csv``), or with the same file name."""
    out = {}
    for name in names:
        norm = name.replace("\\", "/")
        key = next((k for k in labels if norm == k or norm.endswith("/" + k)), None)
        if key is None:
            base = norm.rsplit("/", 1)[-1]
            cands = [k for k in labels if k.rsplit("/", 1)[-1] == base]
            key = cands[0] if len(cands) == 1 else None
        if key is not None:
            out[name] = labels[key]
    return out


def held_out_scores(results: Mapping[str, tuple[np.ndarray, np.ndarray]], windows: Mapping[str, Sequence[tuple]],
                    folds: Sequence[Sequence[str]], profile: str = "standard") -> list[NABResult]:
    """Out-of-sample NAB scores: each fold (a list of names in ``results``) scored with the threshold
    optimised on all the other folds together."""
    empty = [k for k, fold in enumerate(folds) if not fold]
    if len(folds) < 2 or empty:
        raise CogsimError(f"folds: need two or more folds, none empty (got {len(folds)}"
                          + (f"; fold {empty[0]} is empty)" if empty else ")"))
    out = []
    for k, fold in enumerate(folds):
        rest = [n for j, other in enumerate(folds) if j != k for n in other]
        chosen = score_corpus({n: results[n] for n in rest}, windows, profile=profile).threshold
        out.append(score_corpus({n: results[n] for n in fold}, windows, profile=profile, threshold=chosen))
    return out
