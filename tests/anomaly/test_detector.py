"""HTM anomaly detector: pipeline pieces, and a small end-to-end run on a synthetic series."""
import numpy as np
import pytest

from cogsim.anomaly.detector import (DetectorConfig, detect, detect_many, probation_rows, rdse_resolution,
                                     spatial_anomaly)


# A small but complete configuration, so the end-to-end tests stay fast.
SMALL = dict(columns=256, active_columns=12, cells_per_column=8, activation_threshold=6, min_threshold=4,
             max_new_synapse_count=10, max_segments_per_cell=16, max_synapses_per_segment=16,
             rdse_size=200, rdse_active_bits=11, time_of_day=None, chunk_rows=128)


def periodic_series(n, period=12, start="2020-01-01T00:00", anomaly_at=None, length=12):
    ts = np.datetime64(start, "s") + np.arange(n) * np.timedelta64(300, "s")
    pattern = np.array([0, 2, 4, 6, 8, 10, 10, 8, 6, 4, 2, 0], dtype=float)[:period]
    v = np.tile(pattern, n // period + 1)[:n]
    if anomaly_at is not None:
        v[anomaly_at:anomaly_at + length] = 5.0  # in range, but not the learned sequence
    return ts, v


def test_resolution_probation_and_spatial_rules():
    cfg = DetectorConfig()
    assert rdse_resolution(np.array([0.0, 130.0]), cfg) == pytest.approx(130 * 1.4 / 130)
    assert rdse_resolution(np.array([5.0, 5.0]), cfg) == 0.001
    assert probation_rows(4032, cfg) == 604 and probation_rows(22000, cfg) == 750
    v = np.array([1.0, 1.0, 2.0, 1.5, 2.04, 2.2, 0.95, 0.5])
    # range so far [1, 2] → tolerance 0.05: 2.04 is inside; [1, 2.04] → 2.2 outside; [1, 2.2] → 0.95
    # inside (≥ 0.94); [0.95, 2.2] → 0.5 outside. A constant start (1, 1) flags nothing.
    assert spatial_anomaly(v).tolist() == [False, False, False, False, False, True, False, True]


def test_options_are_validated():
    with pytest.raises(ValueError, match="^bogus: unknown detector option"):
        detect_many([periodic_series(10)], bogus=1)
    with pytest.raises(ValueError, match="^columns"):
        DetectorConfig(columns=0)
    with pytest.raises(ValueError, match="^series"):
        detect_many([(np.arange(3), np.zeros(3))])


def test_score_peaks_at_an_injected_anomaly():
    n, at = 600, 480
    ts, v = periodic_series(n, anomaly_at=at)
    (det,) = detect([(ts, v)], DetectorConfig(spatial_anomaly=False, **SMALL))
    assert det.score.shape == (n,) and np.all((det.score >= 0) & (det.score <= 1))
    assert det.raw[360:at].mean() < 0.1  # the repeating pattern is learned
    assert det.raw[at:at + 12].max() > 0.5
    peak = int(np.argmax(det.score[det.probation:])) + det.probation
    assert at <= peak <= at + 24
    assert det.score[at:at + 24].max() > 0.5 > det.score[360:at].max()


def test_batched_streams_of_different_lengths_equal_separate_runs():
    a = periodic_series(240, anomaly_at=200)
    b = periodic_series(120, period=8, start="2021-06-01T12:00")
    calls = []
    batched = detect_many([a, b], progress=lambda done, total: calls.append((done, total)), **SMALL)
    alone_a = detect_many([a], **SMALL)[0]
    assert len(batched[0]) == 240 and len(batched[1]) == 120
    # Stream 0 of the batch sees exactly what it sees alone (the other stream's end changes nothing).
    assert np.allclose(batched[0], alone_a)
    assert np.allclose(batched[1], detect_many([b], **SMALL)[0])  # and so does the shorter one
    # rows count half through the pooler (a call per chunk of 128 rows) and half through the TM
    assert calls[-1] == (360, 360) and len(calls) == 3 and calls == sorted(calls)
