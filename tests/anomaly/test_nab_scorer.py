"""NAB scorer against hand-computed cases and a plain row-by-row reference."""
import json
import math

import numpy as np
import pytest

from cogsim.errors import CogsimError
from cogsim.anomaly.nab import (PROFILES, held_out_scores, load_windows, match_labels, probationary_length,
                                row_weights, score_corpus, scaled_sigmoid, sweep, windows_from_anomalies,
                                windows_to_indices)

N = 1000
TS = np.datetime64("2020-01-01T00:00") + np.arange(N) * np.timedelta64(5, "m")
WIN = {"a": [(TS[500], TS[599])]}  # one window of 100 rows; probation = 150 rows
S1 = 2 / (1 + math.exp(-5)) - 1  # S(-1), the largest TP weight


def score_with(rows, threshold=None, profile="standard", windows=WIN):
    s = np.zeros(N)
    s[list(rows)] = 1.0
    return score_corpus({"a": (TS, s)}, windows, profile=profile, threshold=threshold)


def test_scaled_sigmoid_values():
    assert scaled_sigmoid(-1.0) == pytest.approx(S1)
    assert scaled_sigmoid(0.0) == pytest.approx(0.0)
    assert scaled_sigmoid(-0.5) == pytest.approx(2 / (1 + math.exp(-2.5)) - 1)
    assert scaled_sigmoid(3.5) == -1.0


def test_early_detection_is_perfect_late_detection_is_worth_less():
    early = score_with([500])
    assert early.raw == pytest.approx(1.0) and early.score == pytest.approx(100.0)
    assert early.null == pytest.approx(-1.0) and early.perfect == 1.0
    mid = score_with([550])  # position -(599-550+1)/100 = -0.5
    assert mid.raw == pytest.approx((2 / (1 + math.exp(-2.5)) - 1) / S1)
    late = score_with([599])  # position -1/100
    tp = (2 / (1 + math.exp(-0.05)) - 1) / S1
    assert late.raw == pytest.approx(tp)
    assert late.score == pytest.approx(100 * (tp + 1) / 2)
    # Only the earliest detection of a window counts.
    assert score_with([520, 560, 599]).raw == pytest.approx(score_with([520]).raw)


def test_false_positive_and_false_negative_at_a_fixed_threshold():
    before = score_with([300], threshold=0.5)  # FP before any window: −A_FP, and the window is missed
    assert before.raw == pytest.approx(-1.0 - 0.11)
    assert before.score == pytest.approx(100 * (-1.11 + 1) / 2)
    after = score_with([500, 650], threshold=0.5)  # FP 51 rows after a 100-row window
    fp = (2 / (1 + math.exp(5 * 51 / 99)) - 1) * 0.11
    assert after.raw == pytest.approx(1.0 + fp)
    assert score_with([300], threshold=2.0).raw == pytest.approx(-1.0)  # threshold above every score
    far = score_with([500, 999], threshold=0.5)  # beyond 3 window widths: −A_FP
    assert far.raw == pytest.approx(1.0 - 0.11)
    assert (far.detected_windows, far.false_positive_rows) == (1, 1)


def test_optimised_threshold_skips_costly_detections_and_probation_is_ignored():
    res = score_with([300])  # detecting costs more than it gains → the optimum detects nothing
    assert res.score == pytest.approx(0.0) and res.detected_windows == 0
    s = np.zeros(N)
    s[100] = 1.0  # inside the probationary period: ignored even at a fixed threshold
    s[500] = 0.9
    res = score_corpus({"a": (TS, s)}, WIN, threshold=0.5)
    assert res.raw == pytest.approx(1.0) and res.false_positive_rows == 0
    assert probationary_length(1000) == 150 and probationary_length(100000) == 750


def test_normalisation_null_zero_perfect_hundred_over_two_series():
    wins = {"a": [(TS[300], TS[349]), (TS[700], TS[799])], "b": [(TS[400], TS[449])]}
    zero = {"a": (TS, np.zeros(N)), "b": (TS, np.zeros(N))}
    assert score_corpus(zero, wins).score == pytest.approx(0.0)
    perfect = {k: (TS, np.zeros(N)) for k in wins}
    for k, w in wins.items():
        for lo, _ in w:
            perfect[k][1][np.searchsorted(TS, lo)] = 1.0
    res = score_corpus(perfect, wins)
    assert res.score == pytest.approx(100.0) and res.perfect == 3 and res.null == pytest.approx(-3.0)
    assert res.per_series == pytest.approx({"a": 2.0, "b": 1.0})
    low_fn = score_corpus(zero, wins, profile="reward_low_FN_rate")
    assert low_fn.null == pytest.approx(-6.0) and low_fn.score == pytest.approx(0.0)
    with pytest.raises(CogsimError, match="profile"):
        score_corpus(zero, wins, profile="nope")


def reference_raw(scores, windows, threshold, cost):
    """Row-by-row NAB rules, written independently of the vectorised sweep."""
    n = len(scores)
    prob = probationary_length(n)
    total = 0.0
    for lo, hi in windows:
        hits = [i for i in range(max(lo, prob), hi + 1) if scores[i] >= threshold]
        if hits:
            total += scaled_sigmoid(-(hi - hits[0] + 1) / (hi - lo + 1)) * cost.tp / S1
        elif hi >= prob:
            total -= cost.fn
    for i in range(prob, n):
        if scores[i] < threshold or any(lo <= i <= hi for lo, hi in windows):
            continue
        prev = [(lo, hi) for lo, hi in windows if hi < i]
        if not prev:
            total -= cost.fp
        else:
            lo, hi = prev[-1]
            total += scaled_sigmoid((i - hi) / (hi - lo)) * cost.fp
    return total


@pytest.mark.parametrize("profile", list(PROFILES))
def test_sweep_matches_reference_at_every_threshold(profile):
    rng = np.random.default_rng(5)
    cost = PROFILES[profile]
    n = 600
    scores = np.round(rng.random(n) ** 6, 2)
    windows = windows_from_anomalies(n, [150, 260, 480])
    w, wid = row_weights(n, windows, cost)
    sw = sweep([(scores, w, wid)], cost)
    for thr in sw.thresholds[::7]:
        assert sw.scores[sw.at(thr)] == pytest.approx(reference_raw(scores, windows, thr, cost))
    assert sw.scores[sw.best()] == pytest.approx(max(reference_raw(scores, windows, t, cost) for t in sw.thresholds))


def test_windows_from_anomalies_like_nab_labeller():
    assert windows_from_anomalies(1000, [500]) == [(450, 550)]
    assert windows_from_anomalies(1000, [100, 130]) == [(75, 155)]  # 50-row windows overlap → merged
    assert windows_from_anomalies(1000, [10]) == [(0, 60)]


def test_load_windows_and_match(tmp_path):
    p = tmp_path / "combined_windows.json"
    p.write_text(json.dumps({"realX/a.csv": [["2020-01-01 00:00:00.000000", "2020-01-01 01:00:00.000000"]],
                             "realX/b.csv": []}))
    wins = load_windows(p)
    assert wins["realX/a.csv"][0][1] == np.datetime64("2020-01-01T01:00")
    assert set(match_labels(["data/realX/a.csv", "b.csv", "c.csv"], wins)) == {"data/realX/a.csv", "b.csv"}
    p.write_text("{\n  oops")
    with pytest.raises(CogsimError, match=r"combined_windows.json:2: not valid JSON"):
        load_windows(p)
    p.write_text(json.dumps({"a.csv": [["2020-01-01", "garbage"]]}))
    with pytest.raises(CogsimError, match="a.csv: window 0: unparsable timestamp"):
        load_windows(p)


def test_windows_follow_file_order_where_a_row_goes_back_in_time():
    minutes = [0, 5, 10, 15, 8, 20, 25]
    ts = np.datetime64("2020-01-01T00:00") + np.array(minutes) * np.timedelta64(1, "m")
    at = {m: ts[minutes.index(m)] for m in minutes}
    # NAB opens a window at the row stamped with its start and closes it at the next row stamped with its end
    assert windows_to_indices(ts, [(at[5], at[8])]) == [(1, 4)]
    assert windows_to_indices(ts, [(at[10], at[20])]) == [(2, 5)]
    # limits that name no row: first row >= start up to the row before the next one past the end
    assert windows_to_indices(ts, [(at[5] + np.timedelta64(2, "m"), at[10] + np.timedelta64(2, "m"))]) == [(2, 2)]
    assert windows_to_indices(ts, [(at[25] + np.timedelta64(1, "m"), at[25] + np.timedelta64(9, "m"))]) == []


def test_held_out_scores_take_each_threshold_from_the_other_fold():
    a, b = np.zeros(N), np.zeros(N)
    a[500] = 0.8  # fold 0 alone: threshold 0.8, an early detection
    b[500], b[300] = 0.6, 0.7  # fold 1 alone: threshold 0.6 (the 0.7 false positive costs 0.11)
    results = {"a": (TS, a), "b": (TS, b)}
    windows = {"a": WIN["a"], "b": WIN["a"]}
    assert score_corpus({"a": results["a"]}, windows).threshold == 0.8
    assert score_corpus({"b": results["b"]}, windows).threshold == 0.6
    on_a, on_b = held_out_scores(results, windows, [["a"], ["b"]])
    assert on_a.threshold == 0.6 and on_a.score == pytest.approx(100.0)  # 0.8 >= 0.6: detected at the left edge
    assert on_b.threshold == 0.8 and on_b.score == pytest.approx(0.0)  # nothing reaches 0.8: the null score
    with pytest.raises(CogsimError, match="fold 1"):
        held_out_scores(results, windows, [["a", "b"], []])
