"""Reading and writing ``timestamp,value`` CSV time series (the anomaly detector's input and output).

A user's mistake (missing file or column, empty file, a value or timestamp that doesn't parse)
raises :class:`~cogsim.errors.CogsimError` with a one-line message naming the file and line. A row
earlier than the row before it is an error too, unless the caller passes ``warn``: real recordings
have such rows (NAB's machine_temperature_system_failure.csv:10151), and NAB reads rows in file
order, so then each is reported in one line and the rows are kept as they are.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable

import numpy as np

from cogsim.errors import CogsimError


def _parse_timestamp(text: str) -> np.datetime64:
    t = text.strip()
    if t.endswith("Z"):
        t = t[:-1]
    return np.datetime64(t, "ns")


#: out-of-order rows reported one by one per file; the rest are counted in one more line
REPORTED_BACKWARD_ROWS = 3


def read_series(path: str | Path, timestamp_column: str = "timestamp", value_column: str = "value",
                warn: Callable[[str], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read a CSV with a header naming ``timestamp`` and ``value`` columns (others are ignored).
    Returns (timestamps datetime64[ns] [n], values float64 [n]) in file order. ``warn``: receives a
    line for each row earlier than the row before it (without it, such a row is an error)."""
    path = Path(path)
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise CogsimError(f"{path}: file not found") from None
    except OSError as e:
        raise CogsimError(f"{path}: cannot read ({e.strerror})") from None
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            while header is not None and not any(c.strip() for c in header):
                header = next(reader, None)
            if header is None:
                raise CogsimError(f"{path}: empty file (expected a header line '{timestamp_column},{value_column}')")
            cols = [c.strip().lower() for c in header]
            missing = [c for c in (timestamp_column, value_column) if c.lower() not in cols]
            if missing:
                raise CogsimError(f"{path}:{reader.line_num}: missing column{'s' if len(missing) > 1 else ''} "
                                  f"{', '.join(repr(m) for m in missing)} in header {','.join(header)!r}")
            ti, vi = cols.index(timestamp_column.lower()), cols.index(value_column.lower())
            need = max(ti, vi) + 1
            stamps, values, lines = [], [], []
            for row in reader:
                if not any(c.strip() for c in row):
                    continue
                if len(row) < need:
                    raise CogsimError(f"{path}:{reader.line_num}: expected {len(header)} fields, got {len(row)}")
                stamps.append(row[ti])
                values.append(row[vi])
                lines.append(reader.line_num)
        except csv.Error as e:
            raise CogsimError(f"{path}:{reader.line_num}: malformed CSV ({e})") from None
        except UnicodeDecodeError:
            raise CogsimError(f"{path}: not a UTF-8 text file") from None
    if not values:
        raise CogsimError(f"{path}: no data rows after the header")
    v = np.empty(len(values))
    for k, (text, line) in enumerate(zip(values, lines)):
        try:
            v[k] = float(text)
        except ValueError:
            raise CogsimError(f"{path}:{line}: {value_column}: cannot parse {text!r} as a number") from None
        if not np.isfinite(v[k]):
            raise CogsimError(f"{path}:{line}: {value_column}: {text!r} is not a finite number")
    try:
        t = np.array([s.strip().rstrip("Z") for s in stamps], dtype="datetime64[ns]")
    except ValueError:
        t = np.empty(len(stamps), dtype="datetime64[ns]")
        for k, (text, line) in enumerate(zip(stamps, lines)):
            try:
                t[k] = _parse_timestamp(text)
            except ValueError:
                raise CogsimError(f"{path}:{line}: {timestamp_column}: cannot parse {text!r} as a timestamp "
                                  f"(expected e.g. 2014-04-01 00:05:00)") from None
    if np.isnat(t).any():
        k = int(np.nonzero(np.isnat(t))[0][0])
        raise CogsimError(f"{path}:{lines[k]}: {timestamp_column}: cannot parse {stamps[k]!r} as a timestamp")
    back = np.nonzero(np.diff(t) < np.timedelta64(0, "ns"))[0] + 1
    if len(back) and warn is None:
        k = int(back[0])
        raise CogsimError(f"{path}:{lines[k]}: {timestamp_column}: {stamps[k]!r} is earlier than the row before; "
                          f"rows must be in time order")
    for k in back[:REPORTED_BACKWARD_ROWS].tolist():
        warn(f"{path}:{lines[k]}: {timestamp_column}: {stamps[k].strip()!r} is earlier than the row before "
             f"({stamps[k - 1].strip()!r}); rows are read in file order")
    if len(back) > REPORTED_BACKWARD_ROWS:
        warn(f"{path}: {len(back) - REPORTED_BACKWARD_ROWS} more rows earlier than the row before")
    return t, v


def format_timestamps(timestamps: np.ndarray) -> list[str]:
    """``YYYY-MM-DD HH:MM:SS`` (with fractional seconds only when present), as NAB writes them."""
    ts = np.asarray(timestamps).astype("datetime64[ns]")
    whole = (ts.astype("datetime64[s]") == ts).all()
    text = np.datetime_as_string(ts, unit="s" if whole else "us")
    return [s.replace("T", " ") for s in text]


def write_scores(path: str | Path, timestamps: np.ndarray, values: np.ndarray, scores: np.ndarray,
                 extra: dict[str, np.ndarray] | None = None) -> None:
    """Write ``timestamp,value,anomaly_score[,extra…]``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = extra or {}
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "value", "anomaly_score", *extra])
        cols = [np.asarray(c) for c in extra.values()]
        for i, (t, v, s) in enumerate(zip(format_timestamps(timestamps), values, scores)):
            w.writerow([t, repr(float(v)), f"{float(s):.10g}", *(f"{float(c[i]):.10g}" for c in cols)])
