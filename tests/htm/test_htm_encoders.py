"""Encoders: RDSE overlap/sparsity/determinism, scalar and date encoders, category and multi encoders."""
import numpy as np
import pytest
import torch

from cogsim.htm.encoders import RDSE, CategoryEncoder, DateEncoder, MultiEncoder, ScalarEncoder


def overlap(a, b):
    return int(np.logical_and(a, b).sum())


def test_rdse_fixed_active_bits_and_distinct_indices():
    enc = RDSE(size=400, active_bits=21, resolution=0.1, seed=3)
    values = np.random.default_rng(0).normal(0, 1000, size=5000)
    idx = enc.encode_indices(values)
    assert idx.shape == (5000, 21)
    assert all(len(set(r)) == 21 for r in idx)
    assert (enc.encode(values).sum(-1) == 21).all()
    assert idx.min() >= 0 and idx.max() < 400


def test_rdse_nearby_values_overlap_far_values_do_not():
    enc = RDSE(size=400, active_bits=21, resolution=1.0, seed=7)
    base = enc.encode(np.array([100.2]))[0]
    for d in range(0, 21):  # d buckets apart → at least 21 − d shared bits
        assert overlap(base, enc.encode(np.array([100.2 + d]))[0]) >= 21 - d
    assert overlap(base, enc.encode(np.array([100.7]))[0]) == 21  # same bucket
    far = enc.encode(np.arange(1000.0, 3000.0, 25.0))
    shared = np.logical_and(far, base).sum(-1)
    assert shared.mean() < 3 and shared.max() <= 8  # chance overlap only (≈ 21·21/400 ≈ 1.1)


def test_rdse_is_deterministic_by_seed():
    v = np.linspace(-5, 5, 50)
    a = RDSE(400, 21, 0.3, seed=11).encode_indices(v)
    b = RDSE(400, 21, 0.3, seed=11).encode_indices(v)
    c = RDSE(400, 21, 0.3, seed=12).encode_indices(v)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_rdse_per_stream_resolution_and_torch_roundtrip():
    enc = RDSE(400, 21, resolution=[1.0, 10.0], seed=1)
    vals = np.array([[5.0, 6.0], [5.0, 6.0]])  # streams × rows
    idx = enc.encode_indices(vals)
    assert not np.array_equal(idx[0, 0], idx[0, 1])  # resolution 1: different buckets
    assert np.array_equal(idx[1, 0], idx[1, 1])  # resolution 10: same bucket
    out = enc.encode(torch.tensor([[5.0, 6.0], [5.0, 6.0]]))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.bool and out.shape == (2, 2, 400)
    assert torch.equal(out, torch.as_tensor(enc.encode(vals)))


def test_rdse_rejects_bad_parameters_and_values():
    with pytest.raises(ValueError, match="^resolution"):
        RDSE(400, 21, resolution=0.0)
    with pytest.raises(ValueError, match="^size"):
        RDSE(30, 21, resolution=1.0)
    with pytest.raises(ValueError, match="finite"):
        RDSE(400, 21, 1.0).encode_indices(np.array([np.nan]))


def test_scalar_encoder_contiguous_clipped_and_periodic():
    enc = ScalarEncoder(0.0, 100.0, active_bits=5, size=25)
    lo, hi, mid = enc.encode_indices(np.array([-10.0, 1000.0, 50.0]))
    assert list(lo) == [0, 1, 2, 3, 4] and list(hi) == [20, 21, 22, 23, 24]
    assert list(mid) == list(range(10, 15))
    per = ScalarEncoder(0.0, 24.0, active_bits=5, size=24, periodic=True)
    a, b = per.encode(np.array([23.5, 0.2]))
    assert a.sum() == 5 and overlap(a, b) >= 3  # 23:30 and 00:12 are neighbours on the clock
    assert np.array_equal(per.encode_indices(np.array([1.0])), per.encode_indices(np.array([25.0])))


def test_date_encoder_time_of_day_weekend():
    enc = DateEncoder(time_of_day=(21, 9.49), weekend=21)
    assert enc.size == 54 + 42 and enc.active_bits == 42
    ts = np.array(["2014-04-05T08:00", "2014-04-07T08:00", "2014-04-07T20:00", "2014-04-07T08:10"],
                  dtype="datetime64[s]")
    sat, mon, mon_eve, mon_810 = enc.encode(ts)
    tod = slice(0, 54)
    assert np.array_equal(sat[tod], mon[tod])  # same time of day
    assert overlap(mon[tod], mon_eve[tod]) == 0  # 12 h apart > radius 9.49 h
    assert overlap(mon[tod], mon_810[tod]) >= 20
    assert overlap(sat[54:], mon[54:]) == 0  # weekend flag differs
    assert np.array_equal(mon[54:], mon_eve[54:])


def test_date_encoder_day_of_week_and_bad_input():
    enc = DateEncoder(time_of_day=None, day_of_week=(3, 1.0))
    ts = np.array(["2024-01-01T12:00", "2024-01-08T12:00", "2024-01-04T12:00"], dtype="datetime64[s]")
    mon, mon2, thu = enc.encode_indices(ts)
    assert np.array_equal(mon, mon2) and not set(mon) & set(thu)
    with pytest.raises(ValueError, match="datetime64"):
        enc.encode_indices(np.array([1.0, 2.0]))


def test_category_and_multi_encoder():
    cat = CategoryEncoder(3, active_bits=4)
    a, b, unknown, unknown2 = cat.encode(np.array([0, 2, 7, -1]))
    assert overlap(a, b) == 0 and np.array_equal(unknown, unknown2) and a.sum() == 4
    multi = MultiEncoder([cat, RDSE(50, 5, 1.0)])
    idx = multi.encode_indices([np.array([1, 1]), np.array([3.0, 30.0])])
    assert idx.shape == (2, 9) and (idx[:, :4] < 16).all() and (idx[:, 4:] >= 16).all()
    assert multi.encode([np.array([1]), np.array([3.0])]).sum() == 9
