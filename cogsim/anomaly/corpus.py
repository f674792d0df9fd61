"""A labelled synthetic anomaly corpus in the spirit of NAB's artificial series, made from a seed.

For checking and tuning detectors without redistributing a benchmark: 5-minute series with a daily
rhythm, noise, spikes and regime changes, and labelled anomalies of the kinds real monitoring data
has (level jumps up and down, a flat stretch where a rhythm should be, a missing daily peak, spikes
getting denser, a burst of noise, a spike at an unusual time), plus series without anomalies.
Anomalies are placed after the first 20% of a series (NAB scores nothing in the first 15%); windows
follow NAB's labeller (:func:`cogsim.anomaly.nab.windows_from_anomalies`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cogsim.anomaly.nab import windows_from_anomalies

DAY = 288  # 5-minute rows per day


@dataclass
class LabelledSeries:
    name: str
    timestamps: np.ndarray
    values: np.ndarray
    anomalies: list[int]

    def windows(self) -> list[tuple[np.datetime64, np.datetime64]]:
        rows = windows_from_anomalies(len(self.values), self.anomalies)
        return [(self.timestamps[lo], self.timestamps[hi]) for lo, hi in rows]


def _daily(n: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n)
    phase = rng.uniform(0, 2 * np.pi)
    shape = rng.integers(0, 3)
    x = 2 * np.pi * t / DAY + phase
    if shape == 0:
        base = np.sin(x)
    elif shape == 1:
        base = np.maximum(np.sin(x), 0) ** 2 * 2 - 0.5  # a daytime hump
    else:
        base = np.sign(np.sin(x)) * 0.8  # on/off
    return 50 + 20 * base


def _anomaly_rows(n: int, k: int, rng: np.random.Generator) -> list[int]:
    lo = int(0.2 * n)
    slots = np.linspace(lo, n - DAY // 2, k + 1)
    return sorted(int(rng.uniform(slots[i], slots[i + 1] - DAY // 4)) for i in range(k))


def make_series(kind: str, n: int, rng: np.random.Generator, start="2015-01-01T00:00") -> LabelledSeries:
    """One series of ``kind`` (see :data:`KINDS`) with ``n`` rows."""
    ts = np.datetime64(start, "s") + np.arange(n) * np.timedelta64(300, "s")
    noise = rng.normal(0, rng.uniform(0.5, 3.0), n)
    anomalies: list[int] = []
    if kind == "flat":
        v = np.full(n, rng.uniform(1, 100))
    elif kind == "noise":
        v = 30 + noise * 3
    elif kind == "daily":
        v = _daily(n, rng) + noise
    elif kind in ("jump_up", "jump_down", "flat_middle", "no_peak", "noise_burst"):
        v = _daily(n, rng) + noise
        for a in _anomaly_rows(n, int(rng.integers(1, 3)), rng):
            length = int(rng.integers(DAY // 6, DAY // 2))
            seg = slice(a, min(n, a + length))
            if kind == "jump_up":
                v[seg] += rng.uniform(15, 40)
            elif kind == "jump_down":
                v[seg] -= rng.uniform(15, 40)
            elif kind == "flat_middle":
                v[seg] = v[a] + rng.normal(0, 0.3, seg.stop - seg.start)
            elif kind == "no_peak":
                v[seg] = np.minimum(v[seg], 40 + rng.normal(0, 1, seg.stop - seg.start))
            else:
                v[seg] += rng.normal(0, 15, seg.stop - seg.start)
            anomalies.append(a)
    elif kind == "spike_density":
        v = 10 + np.abs(noise)
        period = int(rng.integers(40, 80))
        v[::period] += 60
        a = _anomaly_rows(n, 1, rng)[0]
        v[a:a + DAY:period // 4] += 60
        anomalies.append(a)
    elif kind == "odd_spike":
        v = _daily(n, rng) + noise
        for a in _anomaly_rows(n, int(rng.integers(1, 4)), rng):
            v[a:a + 3] += rng.choice([-1, 1]) * rng.uniform(30, 60)
            anomalies.append(a)
    elif kind == "level_shift":
        v = 40 + np.cumsum(rng.normal(0, 0.05, n)) + noise
        for a in _anomaly_rows(n, int(rng.integers(1, 3)), rng):
            v[a:] += rng.choice([-1, 1]) * rng.uniform(10, 25)
            anomalies.append(a)
    else:
        raise ValueError(f"kind: unknown series kind {kind!r} (known: {', '.join(KINDS)})")
    return LabelledSeries(kind, ts, np.round(v, 4), anomalies)


KINDS = ("flat", "noise", "daily", "jump_up", "jump_down", "flat_middle", "no_peak", "noise_burst",
         "spike_density", "odd_spike", "level_shift")


def make_corpus(n_series: int = 22, rows: int = 4032, seed: int = 0) -> list[LabelledSeries]:
    """``n_series`` series cycling through :data:`KINDS`, lengths varying ±25% around ``rows``."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_series):
        kind = KINDS[i % len(KINDS)]
        n = int(rows * rng.uniform(0.75, 1.25))
        s = make_series(kind, n, rng)
        s.name = f"{kind}_{i:02d}.csv"
        out.append(s)
    return out


def write_corpus(folder, series: list[LabelledSeries]) -> None:
    """Write each series as ``folder/<name>`` (timestamp,value) and the windows as
    ``folder/combined_windows.json`` (NAB's format)."""
    import json
    from pathlib import Path

    from cogsim.anomaly.csvio import format_timestamps

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    labels = {}
    for s in series:
        with (folder / s.name).open("w") as f:
            f.write("timestamp,value\n")
            f.writelines(f"{t},{v!r}\n" for t, v in zip(format_timestamps(s.timestamps), s.values.tolist()))
        labels[s.name] = [[str(a).replace("T", " ") + ".000000", str(b).replace("T", " ") + ".000000"]
                          for a, b in s.windows()]
    (folder / "combined_windows.json").write_text(json.dumps(labels, indent=2) + "\n")


if __name__ == "__main__":  # python -m cogsim.anomaly.corpus OUT_DIR [N_SERIES ROWS SEED]
    import sys

    args = sys.argv[1:]
    if not args:
        raise SystemExit("usage: python -m cogsim.anomaly.corpus OUT_DIR [N_SERIES [ROWS [SEED]]]")
    numbers = [int(a) for a in args[1:4]]
    write_corpus(args[0], make_corpus(*numbers))
