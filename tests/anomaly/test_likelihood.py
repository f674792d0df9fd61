"""Anomaly likelihood: the NuPIC formulas, the probationary period, the fit, filtering, batching."""
import math

import numpy as np
import pytest

from cogsim.anomaly.likelihood import AnomalyLikelihood, likelihood_series, log_likelihood, tail_probability


def test_tail_probability_is_the_normal_q_function():
    for x, mu, sd in [(0.5, 0.2, 0.1), (0.9, 0.3, 0.05), (0.25, 0.25, 0.2), (0.0, 0.4, 0.1)]:
        expected = 0.5 * math.erfc((x - mu) / (sd * 1.4142))
        assert tail_probability(x, mu, sd) == pytest.approx(expected, rel=1e-12)
    # Below the mean the tail probability exceeds 0.5 (NAB-era NuPIC); symmetric=True mirrors it.
    assert tail_probability(0.1, 0.3, 0.1) == pytest.approx(1 - tail_probability(0.5, 0.3, 0.1))
    assert tail_probability(0.1, 0.3, 0.1, symmetric=True) == pytest.approx(tail_probability(0.5, 0.3, 0.1))
    assert tail_probability(0.3, 0.3, 0.1) == pytest.approx(0.5)


def test_log_likelihood_formula():
    for L in [0.0, 0.5, 0.9, 0.999, 0.99999, 1.0]:
        assert log_likelihood(L) == pytest.approx(math.log(1.0000000001 - L) / -23.02585084720009, rel=1e-12)
    assert log_likelihood(0.5) == pytest.approx(0.0301, abs=1e-4)
    assert log_likelihood(1.0) == pytest.approx(1.0, abs=1e-9)


def test_probationary_period_gives_half():
    al = AnomalyLikelihood(streams=2, learning_period=[3, 5], estimation_samples=[2, 2])
    raw = [0.1, 0.9, 0.2, 0.3, 0.0, 1.0, 0.5]
    outs = [al.compute([r, r], [float(i), float(i)]) for i, r in enumerate(raw)]
    assert [o[0] for o in outs[:5]] == [0.5] * 5 and outs[5][0] != 0.5
    assert [o[1] for o in outs] == [0.5] * 7


def test_likelihood_against_hand_computation():
    # learning 2, estimation 3: the fit at record 5 uses the moving averages of records 2..4.
    raw = np.array([0.9, 0.1, 0.2, 0.4, 0.3, 0.8, 0.1])
    vals = np.arange(7.0)
    avg = np.array([raw[max(0, i - 9):i + 1].mean() for i in range(7)])
    mu, var = avg[2:5].mean(), avg[2:5].var()
    sd = math.sqrt(max(var, 0.0003))
    mu = max(mu, 0.03)
    q5 = 0.5 * math.erfc((avg[5] - mu) / (sd * 1.4142))
    q6 = 0.5 * math.erfc((avg[6] - mu) / (sd * 1.4142))
    got = likelihood_series(raw, vals, learning_period=2, estimation_samples=3)
    assert got[:5].tolist() == [0.5] * 5
    assert got[5] == pytest.approx(1 - q5, rel=1e-12) and got[6] == pytest.approx(1 - q6, rel=1e-12)
    al = AnomalyLikelihood(1, 2, 3)
    online = [al.compute([r], [v])[0] for r, v in zip(raw, vals)]
    assert online == pytest.approx(got.tolist(), rel=1e-12)


def test_mean_and_variance_floors():
    # A perfectly predicted series (raw 0) fits mean 0 → floored to 0.03, variance to 0.0003.
    raw = np.zeros(40)
    raw[35] = 0.2
    got = likelihood_series(raw, np.arange(40.0), learning_period=5, estimation_samples=20)
    expected = 1 - 0.5 * math.erfc((0.02 - 0.03) / (math.sqrt(0.0003) * 1.4142))
    assert got[35] == pytest.approx(expected, rel=1e-12)


def test_flat_metric_gives_null_distribution():
    raw = np.r_[np.zeros(30), np.ones(10)]
    got = likelihood_series(raw, np.full(40, 7.0), learning_period=5, estimation_samples=10)
    # Null distribution: mean 0.5, stdev 1000 → every likelihood is ≈ 0.5.
    assert np.allclose(got, 0.5, atol=1e-3)


def test_consecutive_red_likelihoods_are_damped():
    rng = np.random.default_rng(1)
    raw = np.clip(rng.normal(0.1, 0.02, 600), 0, 1)
    raw[500:505] = 1.0
    got = likelihood_series(raw, rng.normal(size=600), learning_period=100, estimation_samples=100)
    assert got[500] > 0.99
    red = np.nonzero(got > 1 - 1e-5)[0]
    assert len(red) >= 1 and np.all(got[red[-1] + 1:506] == pytest.approx(0.999))


def test_reestimation_every_period_and_window():
    rng = np.random.default_rng(2)
    raw = np.clip(rng.normal(0.3, 0.1, 1500), 0, 1)
    raw[700:] *= 0.2  # regime change: the re-fit at 800 adapts
    vals = rng.normal(size=1500)
    got = likelihood_series(raw, vals, learning_period=50, estimation_samples=50, historic_window_size=300)
    al = AnomalyLikelihood(1, 50, 50, historic_window_size=300)
    online = np.array([al.compute([r], [v])[0] for r, v in zip(raw, vals)])
    assert np.allclose(got, online, rtol=0, atol=1e-12)


def test_batched_online_equals_single_series_with_masking():
    rng = np.random.default_rng(3)
    lengths, periods = [400, 250, 330], [(40, 30), (20, 60), (100, 10)]
    raws = [np.clip(rng.normal(0.2, 0.15, n), 0, 1) for n in lengths]
    vals = [rng.normal(size=n) for n in lengths]
    al = AnomalyLikelihood(3, [p[0] for p in periods], [p[1] for p in periods], historic_window_size=120,
                           reestimation_period=50, symmetric=True)
    out = np.full((3, 400), np.nan)
    for t in range(400):
        active = np.array([t < n for n in lengths])
        r = np.array([raws[s][t] if active[s] else 0.0 for s in range(3)])
        v = np.array([vals[s][t] if active[s] else 0.0 for s in range(3)])
        out[:, t] = al.compute(r, v, active)
    for s, n in enumerate(lengths):
        ref = likelihood_series(raws[s], vals[s], *periods[s], historic_window_size=120, reestimation_period=50,
                                symmetric=True)
        assert np.allclose(out[s, :n], ref, rtol=0, atol=1e-12)
        assert np.isnan(out[s, n:]).all()


def test_flat_metric_check_matches_exact_variance():
    from cogsim.anomaly.likelihood import _flat

    rng = np.random.default_rng(4)
    v = np.r_[rng.random(2000) * 1e6, np.full(1500, 5.0), 5 + rng.normal(0, 2e-3, 1500), rng.random(1500)]
    lo = rng.integers(0, len(v) - 10, 400)
    hi = np.minimum(lo + rng.integers(1, 4000, 400), len(v))
    exact = np.array([np.var(v[a:b]) < 1.5e-5 for a, b in zip(lo, hi)])
    assert exact.any() and not exact.all()
    assert np.array_equal(_flat(v, lo, hi), exact)
