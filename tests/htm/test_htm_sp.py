"""SpatialPooler: inhibition, overlaps, potential pools, learning, boosting, batching, checkpoints."""
from __future__ import annotations

import io

import pytest
import torch

from cogsim.htm.spatial_pooler import SpatialPooler


def _inputs(n, size=200, active=20, streams=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, streams, size, dtype=torch.bool)
    for i in range(n):
        for s in range(streams):
            x[i, s, torch.randperm(size, generator=g)[:active]] = True
    return x


def _noisy(x, flips, seed):
    g = torch.Generator().manual_seed(seed)
    on = x.nonzero().squeeze(1)
    off = (~x).nonzero().squeeze(1)
    y = x.clone()
    y[on[torch.randperm(on.numel(), generator=g)[:flips]]] = False
    y[off[torch.randperm(off.numel(), generator=g)[:flips]]] = True
    return y


def test_global_inhibition_gives_exactly_num_active_columns_and_ties_go_to_higher_index():
    sp = SpatialPooler(200, num_columns=256, num_active_columns=12, streams=3)
    for x in _inputs(5, streams=3):
        assert torch.equal(sp.compute(x).sum(1), torch.full((3,), 12))
    empty = sp.compute(torch.zeros(3, 200, dtype=torch.bool), learn=False)  # all overlaps 0: a tie
    assert torch.equal(empty[0].nonzero().squeeze(1), torch.arange(256 - 12, 256))


def test_overlaps_count_connected_synapses_onto_active_inputs():
    sp = SpatialPooler(150, num_columns=128, num_active_columns=10, streams=2, syn_perm_connected=0.3)
    x = _inputs(1, size=150, streams=2)[0]
    sp.compute(x, learn=False)
    connected = (sp.permanence >= 0.3 - 1e-6).float()
    expected = torch.bmm(connected, x.float()[:, :, None])[:, :, 0].long()
    assert torch.equal(sp.overlaps, expected)
    winners = sp.compute(x, learn=False)
    # the winners are the largest overlaps
    assert sp.overlaps[winners].min() >= sp.overlaps[~winners].max()


def test_potential_pools_and_initial_permanences():
    sp = SpatialPooler(100, num_columns=64, potential_pct=0.4, streams=1, syn_perm_connected=0.2)
    pot = sp.potential[0]
    assert torch.equal(pot.sum(1), torch.full((64,), 40))
    perm = sp.permanence[0][pot]
    connected = (perm >= 0.2).float().mean()
    assert 0.4 < float(connected) < 0.6  # half start connected
    assert perm.min() >= 0.0 and perm.max() <= 1.0
    local = SpatialPooler(100, num_columns=50, potential_radius=5, potential_pct=1.0, wrap_around=False)
    centre = 2 * 20 + 1  # column 20 → input floor(20.5 · 2) = 41
    assert torch.equal(local.potential[0, 20].nonzero().squeeze(1), torch.arange(centre - 5, centre + 6))


def test_learning_makes_winners_stable_and_tuned_to_their_input():
    sp = SpatialPooler(200, num_columns=256, num_active_columns=10, syn_perm_active_inc=0.05,
                       syn_perm_inactive_dec=0.01, seed=3)
    pattern = _inputs(1, seed=4)[0, 0]

    def response():
        clean = sp.compute(pattern[None], learn=False)[0]
        overlap = float(sp.overlaps[0][clean].float().mean())
        noisy = [sp.compute(_noisy(pattern, 6, seed=k)[None], learn=False)[0] for k in range(8)]
        shared = sum(int((n & clean).sum()) for n in noisy) / (8 * 10)
        return overlap, shared

    overlap0, shared0 = response()
    for k in range(30):
        sp.compute(_noisy(pattern, 6, seed=100 + k)[None], learn=True)
    overlap1, shared1 = response()
    assert overlap1 > overlap0  # winners' connected synapses moved onto the pattern's bits
    assert shared1 > shared0 + 0.2  # noisy versions map more and more to the same columns
    perm = sp.permanence[~torch.isnan(sp.permanence)]
    assert perm.min() >= 0.0 and perm.max() <= 1.0


def test_boosting_changes_which_columns_win():
    x = _inputs(1, seed=9)[0]
    used = {}
    for strength in (0.0, 10.0):
        sp = SpatialPooler(200, num_columns=128, num_active_columns=8, boost_strength=strength,
                           duty_cycle_period=20, seed=2)
        seen = torch.zeros(128, dtype=torch.bool)
        for _ in range(60):
            seen |= sp.compute(x)[0]
        used[strength] = int(seen.sum())
        if strength > 0:
            assert not torch.all(sp.boost == 1.0)
    assert used[0.0] == 8  # without boosting the same columns always win
    assert used[10.0] > used[0.0]  # boosting gives the losers their turn


def test_local_inhibition_keeps_each_winner_within_its_neighbourhood_quota():
    sp = SpatialPooler(200, num_columns=100, global_inhibition=False, local_area_density=0.1,
                       potential_radius=20, streams=2, seed=5)
    for x in _inputs(8, streams=2, seed=6):
        active = sp.compute(x)
    r = sp.inhibition_radius
    assert (r >= 1).all()
    ov = sp.overlaps
    for s in range(2):
        radius = min(int(r[s]), 49)
        quota = int(0.5 + 0.1 * (2 * radius + 1))
        for c in active[s].nonzero().squeeze(1).tolist():
            nb = [(c + d) % 100 for d in range(-radius, radius + 1) if d != 0]
            beaten = sum(1 for n in nb if ov[s, n] > ov[s, c] or (ov[s, n] == ov[s, c] and n < c))
            assert beaten < quota


def test_batched_streams_equal_single_stream_poolers():
    xs = _inputs(12, streams=3, seed=7)
    batched = SpatialPooler(200, num_columns=128, num_active_columns=8, boost_strength=1.0, seed=11, streams=3)
    singles = [SpatialPooler(200, num_columns=128, num_active_columns=8, boost_strength=1.0, seed=11 + s)
               for s in range(3)]
    for x in xs:
        out = batched.compute(x)
        for s, sp in enumerate(singles):
            assert torch.equal(sp.compute(x[s:s + 1])[0], out[s])
    for s, sp in enumerate(singles):
        assert torch.equal(sp.permanence[0].nan_to_num(-1), batched.permanence[s].nan_to_num(-1))


def test_state_dict_round_trip():
    sp = SpatialPooler(200, num_columns=128, num_active_columns=8, streams=2)
    xs = _inputs(6, streams=2)
    for x in xs:
        sp.compute(x)
    buf = io.BytesIO()
    torch.save(sp.state_dict(), buf)
    buf.seek(0)
    clone = SpatialPooler(200, num_columns=128, num_active_columns=8, streams=2, seed=99)
    clone.load_state_dict(torch.load(buf))
    for x in _inputs(4, streams=2, seed=1):
        assert torch.equal(clone.compute(x), sp.compute(x))


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="potential_pct"):
        SpatialPooler(10, num_columns=8, potential_pct=0.0, num_active_columns=2)
    with pytest.raises(ValueError, match=r"shape \[1, 10\]"):
        SpatialPooler(10, num_columns=8, num_active_columns=2).compute(torch.zeros(2, 10, dtype=torch.bool))
