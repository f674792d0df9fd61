"""Anomaly likelihood: how unusual the recent raw HTM anomaly scores are, NuPIC-style (docs/design.md §5.2.5).

A normal fit to the moving average of raw scores, re-estimated periodically, turned into a tail
probability and a log-likelihood. :class:`AnomalyLikelihood` runs online over a batch of streams;
:func:`likelihood_series` computes the same numbers for a recorded series at once.
"""
from __future__ import annotations

import numpy as np
import torch

#: Tail probabilities at or below this are "red" (NuPIC: 1 − 0.99999, computed the same way).
RED = 1.0 - 0.99999
#: A red value that follows a red value is replaced by this (NuPIC: 1 − 0.999).
YELLOW = 1.0 - 0.999
NULL_MEAN, NULL_STDEV = 0.5, 1000.0
MIN_MEAN, MIN_VARIANCE = 0.03, 0.0003
FLAT_METRIC_VARIANCE = 1.5e-5
LOG_DENOMINATOR = -23.02585084720009


def erfc(x: np.ndarray) -> np.ndarray:
    return torch.special.erfc(torch.as_tensor(np.asarray(x, dtype=np.float64))).numpy()


def tail_probability(x, mean, stdev, symmetric: bool = False) -> np.ndarray:
    """NuPIC's Q function 0.5·erfc((x − mean) / (stdev·1.4142)); with ``symmetric`` values below the
    mean mirror above it (0.5·erfc(|x − mean| / …), never above 0.5)."""
    z = (np.asarray(x, dtype=np.float64) - mean) / stdev
    if symmetric:
        z = np.abs(z)
    return 0.5 * erfc(z / 1.4142)


def log_likelihood(likelihood) -> np.ndarray:
    """ln(1.0000000001 − L) / −23.02585084720009: maps L ∈ [0, 1] onto ≈ [0, 1], stretching L → 1."""
    return np.log(1.0000000001 - np.asarray(likelihood, dtype=np.float64)) / LOG_DENOMINATOR


def skip_records(num_ingested, window_size: int, learning_period):
    """Records at the start of the historic window still inside the learning period (NuPIC's rule)."""
    shifted_out = np.maximum(0, np.asarray(num_ingested) - window_size)
    return np.minimum(num_ingested, np.maximum(0, np.asarray(learning_period) - shifted_out))


def moving_average(raw: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean of the last ``window`` values along the last axis (fewer at the start)."""
    raw = np.asarray(raw, dtype=np.float64)
    c = np.cumsum(raw, axis=-1)
    out = c.copy()
    if raw.shape[-1] > window:
        out[..., window:] = c[..., window:] - c[..., :-window]
    counts = np.minimum(np.arange(1, raw.shape[-1] + 1), window)
    return out / counts


def _fit(avg: np.ndarray, values: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normal fit per row over ``valid`` entries of ``avg`` [E, W]; null where nothing is valid or the
    metric ``values`` are flat. Returns (mean, stdev) [E]."""
    n = valid.sum(axis=1)
    has = n > 0
    nn = np.maximum(n, 1)
    mean = np.where(valid, avg, 0.0).sum(axis=1) / nn
    var = np.where(valid, (avg - mean[:, None]) ** 2, 0.0).sum(axis=1) / nn
    vmean = np.where(valid, values, 0.0).sum(axis=1) / nn
    vvar = np.where(valid, (values - vmean[:, None]) ** 2, 0.0).sum(axis=1) / nn
    mean = np.maximum(mean, MIN_MEAN)
    stdev = np.sqrt(np.maximum(var, MIN_VARIANCE))
    null = ~has | (vvar < FLAT_METRIC_VARIANCE)
    return np.where(null, NULL_MEAN, mean), np.where(null, NULL_STDEV, stdev)


def _estimate(raw_win: np.ndarray, val_win: np.ndarray, rec_idx: np.ndarray, ingested: np.ndarray,
              window_size: int, learning: np.ndarray, averaging_window: int):
    """Fit at ``ingested`` records for E streams from their recent records.

    ``raw_win``/``val_win`` [E, W] hold records ``rec_idx`` [E, W] (oldest first, negative = absent).
    Like NuPIC, the moving average restarts at the start of the historic window (the last
    ``window_size`` records). Returns (mean, stdev, last window average) [E].
    """
    start = np.maximum(0, ingested - window_size)[:, None]
    inwin = rec_idx >= start
    r = np.where(inwin, raw_win, 0.0)
    c = np.cumsum(r, axis=1)
    cnt = np.cumsum(inwin, axis=1)
    k = averaging_window
    if r.shape[1] > k:
        c[:, k:] = c[:, k:] - np.cumsum(r, axis=1)[:, :-k]
        cnt[:, k:] = cnt[:, k:] - np.cumsum(inwin, axis=1)[:, :-k]
    avg = c / np.maximum(cnt, 1)
    skip = skip_records(ingested, window_size, learning)
    valid = inwin & (rec_idx >= start + skip[:, None])
    mean, stdev = _fit(avg, val_win, valid)
    return mean, stdev, avg[:, -1]


def _filter(tail: np.ndarray, prev_tail: np.ndarray) -> np.ndarray:
    """Damp a red tail probability that follows a red one (``prev_tail`` NaN = no previous)."""
    return np.where((tail <= RED) & (prev_tail <= RED), YELLOW, tail)


def _flat(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Whether each slice ``values[lo:hi]`` has variance < 1.5e-5 (NuPIC's flat-metric test).

    Decided from the slice's range where that settles it (var ≤ range²/4 and var ≥ range²/(2n)),
    exactly otherwise."""
    out = np.zeros(len(lo), dtype=bool)
    n = len(values)
    if n == 0:
        return out
    # Sparse tables of range minima/maxima: O(n log n) once, O(1) per slice.
    mins, maxs = [values], [values]
    step = 1
    while 2 * step <= n:
        mins.append(np.minimum(mins[-1][:-step], mins[-1][step:]))
        maxs.append(np.maximum(maxs[-1][:-step], maxs[-1][step:]))
        step *= 2
    length = hi - lo
    ok = length > 0
    level = np.zeros(len(lo), dtype=np.int64)
    level[ok] = np.floor(np.log2(length[ok])).astype(np.int64)
    rng = np.zeros(len(lo))
    for lv in np.unique(level[ok]):
        sel = ok & (level == lv)
        a, b = lo[sel], hi[sel] - (1 << lv)
        rng[sel] = np.maximum(maxs[lv][a], maxs[lv][b]) - np.minimum(mins[lv][a], mins[lv][b])
    sq = rng * rng
    out[ok] = sq[ok] / 4 < FLAT_METRIC_VARIANCE
    unsure = ok & ~out & (sq / (2 * np.maximum(length, 1)) < FLAT_METRIC_VARIANCE)
    for e in np.nonzero(unsure)[0]:
        out[e] = np.var(values[lo[e]:hi[e]]) < FLAT_METRIC_VARIANCE
    return out


def likelihood_series(raw, values, learning_period: int = 288, estimation_samples: int = 100,
                      historic_window_size: int = 8640, reestimation_period: int = 100,
                      averaging_window: int = 10, symmetric: bool = False) -> np.ndarray:
    """Likelihood of every record of one recorded series (the numbers :class:`AnomalyLikelihood`
    produces online, computed vectorised over time). ``raw``, ``values``: [T]."""
    raw = np.asarray(raw, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    n = raw.shape[0]
    out = np.full(n, 0.5)
    prob = learning_period + estimation_samples
    if n <= prob:
        return out
    avg = moving_average(raw, averaging_window)
    times = np.arange(prob, n)
    est = np.unique(times[(times == prob) | (times % reestimation_period == 0)])
    k = averaging_window
    ws = np.maximum(0, est - historic_window_size)
    first = ws + skip_records(est, historic_window_size, learning_period)
    count = est - first
    # Mean and variance of the fitted moving averages from prefix sums (one fit per re-estimation).
    c1 = np.concatenate([[0.0], np.cumsum(avg)])
    c2 = np.concatenate([[0.0], np.cumsum(avg * avg)])
    s1, s2 = c1[est] - c1[first], c2[est] - c2[first]
    for e in np.nonzero((ws > 0) & (first < ws + k - 1))[0]:
        # NuPIC's moving average restarts at the start of the historic window: the first k-1 entries
        # of the window average fewer records than avg does.
        lo, hi = int(first[e]), int(ws[e]) + k - 1
        head = (np.cumsum(raw[ws[e]:hi]) / np.arange(1, k))[lo - ws[e]:]
        s1[e] += head.sum() - avg[lo:hi].sum()
        s2[e] += (head * head).sum() - (avg[lo:hi] ** 2).sum()
    n_fit = np.maximum(count, 1)
    mean_e = s1 / n_fit
    var_e = np.maximum(s2 / n_fit - mean_e * mean_e, 0.0)
    null = (est == 0) | (count <= 0) | _flat(values, first, est)
    mean_e = np.where(null, NULL_MEAN, np.maximum(mean_e, MIN_MEAN))
    std_e = np.where(null, NULL_STDEV, np.sqrt(np.maximum(var_e, MIN_VARIANCE)))
    seg = np.searchsorted(est, times, side="right") - 1
    mean_t, std_t = mean_e[seg], std_e[seg]
    tail = tail_probability(avg[prob:], mean_t, std_t, symmetric)
    prev_avg = avg[prob - 1:n - 1] if prob > 0 else np.concatenate([[np.nan], avg[:n - 1]])
    prev = tail_probability(prev_avg, mean_t, std_t, symmetric)
    out[prob:] = 1.0 - _filter(tail, prev)
    return out


class AnomalyLikelihood:
    """Online NuPIC anomaly likelihood for ``streams`` streams advancing together.

    ``learning_period`` and ``estimation_samples`` may differ per stream (arrays of length
    ``streams``). :meth:`compute` takes one raw score and one input value per stream and a mask of the
    streams that advance this step (finished streams of a padded batch don't); masked streams return
    NaN and keep their state.
    """

    def __init__(self, streams: int = 1, learning_period=288, estimation_samples=100,
                 historic_window_size: int = 8640, reestimation_period: int = 100, averaging_window: int = 10,
                 symmetric: bool = False):
        lp = np.broadcast_to(np.asarray(learning_period, dtype=np.int64), (streams,)).copy()
        es = np.broadcast_to(np.asarray(estimation_samples, dtype=np.int64), (streams,)).copy()
        if np.any(lp < 0) or np.any(es < 0):
            raise ValueError("learning_period: learning_period and estimation_samples must be ≥ 0")
        if historic_window_size < max(averaging_window, int(es.max(initial=0))):
            raise ValueError("historic_window_size: must be ≥ estimation_samples and averaging_window")
        if reestimation_period < 1 or averaging_window < 1:
            raise ValueError("reestimation_period: reestimation_period and averaging_window must be ≥ 1")
        self.streams, self.learning_period, self.estimation_samples = streams, lp, es
        self.probationary_period = lp + es
        self.historic_window_size, self.reestimation_period = historic_window_size, reestimation_period
        self.averaging_window, self.symmetric = averaging_window, symmetric
        self.reset()

    def reset(self) -> None:
        s, h = self.streams, self.historic_window_size
        self.iteration = np.zeros(s, dtype=np.int64)
        self._raw = np.zeros((s, h))
        self._values = np.zeros((s, h))
        self._mean = np.full(s, np.nan)
        self._stdev = np.full(s, np.nan)
        self._prev_tail = np.full(s, np.nan)

    def _window(self, rows: np.ndarray, length: int):
        """Last ``length`` records (oldest first) of the given streams, with their record indices."""
        it = self.iteration[rows]
        rec = it[:, None] - length + np.arange(length)
        pos = np.mod(rec, self.historic_window_size)
        return self._raw[rows[:, None], pos], self._values[rows[:, None], pos], rec

    def compute(self, raw, values=None, active=None) -> np.ndarray:
        """Likelihood [streams] for this step's raw scores (and input values, for the flat-metric
        check; ``None`` = not flat)."""
        raw = np.asarray(raw, dtype=np.float64).reshape(self.streams)
        values = (np.full(self.streams, np.nan) if values is None  # NaN: never counts as flat
                  else np.asarray(values, dtype=np.float64).reshape(self.streams))
        active = np.ones(self.streams, bool) if active is None else np.asarray(active, bool).reshape(self.streams)
        out = np.full(self.streams, np.nan)
        it = self.iteration
        scoring = active & (it >= self.probationary_period)
        out[active & ~scoring] = 0.5
        fit = scoring & (np.isnan(self._mean) | (it % self.reestimation_period == 0))
        rows = np.nonzero(fit)[0]
        if len(rows):
            w = int(min(self.historic_window_size, it[rows].max()))
            if w > 0:
                rw, vw, rec = self._window(rows, w)
                rw, vw = np.where(rec >= 0, rw, 0.0), np.where(rec >= 0, vw, 0.0)
                mean, stdev, last = _estimate(rw, vw, rec, it[rows], self.historic_window_size,
                                              self.learning_period[rows], self.averaging_window)
                has_prev = it[rows] > 0
                self._prev_tail[rows] = np.where(has_prev, tail_probability(last, mean, stdev, self.symmetric), np.nan)
            else:
                mean, stdev = np.full(len(rows), NULL_MEAN), np.full(len(rows), NULL_STDEV)
                self._prev_tail[rows] = np.nan
            self._mean[rows], self._stdev[rows] = mean, stdev
        rows = np.nonzero(scoring)[0]
        if len(rows):
            k = self.averaging_window
            recent, _, rec = self._window(rows, k - 1)
            recent = np.where(rec >= 0, recent, 0.0)
            count = np.minimum(it[rows], k - 1) + 1
            avg = (recent.sum(axis=1) + raw[rows]) / count
            tail = tail_probability(avg, self._mean[rows], self._stdev[rows], self.symmetric)
            out[rows] = 1.0 - _filter(tail, self._prev_tail[rows])
            self._prev_tail[rows] = tail
        pos = np.mod(it, self.historic_window_size)
        idx = np.nonzero(active)[0]
        self._raw[idx, pos[idx]] = raw[idx]
        self._values[idx, pos[idx]] = values[idx]
        self.iteration = it + active
        return out

    @staticmethod
    def log_likelihood(likelihood) -> np.ndarray:
        return log_likelihood(likelihood)
