"""SpatialPooler native (C) backend: bit-exact with the torch path (active columns, overlaps,
permanences, duty cycles, boosts, state_dict) over many steps, for global inhibition with and without
boosting, a stimulus threshold that filters winners and raises permanences, weak-column bumps, several
streams and threads; checkpoints, pickles and backend switches; fallbacks and errors."""
from __future__ import annotations

import copy
import io

import pytest
import torch

import cogsim.native
from cogsim.htm import native_sp
from cogsim.htm.spatial_pooler import SpatialPooler

needs_native = pytest.mark.skipif(native_sp.library() is None,
                                  reason="no C compiler: the native SP backend is unavailable")


def _inputs(n, size, active, streams, seed):
    """[n, streams, size] bool inputs with `active` random bits each; every 9th step of stream 0 empty."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.rand(n, streams, size, generator=g).topk(active, dim=2).indices
    x = torch.zeros(n, streams, size, dtype=torch.bool).scatter_(2, idx, True)
    x[::9, 0] = False
    return x


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.is_floating_point():  # NaN (outside the potential pool) equals NaN, bit for bit elsewhere
        return torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(-7.0).view(torch.int32),
                                                                 b.nan_to_num(-7.0).view(torch.int32))
    return torch.equal(a, b)


def _assert_same_state(a: SpatialPooler, b: SpatialPooler) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and _same(sa[k], sb[k]), k


CONFIGS = {
    # the anomaly detector's kind of pooler, small
    "plain": dict(input_size=160, num_columns=256, num_active_columns=12, potential_pct=0.8, syn_perm_connected=0.2,
                  syn_perm_active_inc=0.03, syn_perm_inactive_dec=0.01, streams=3),
    "boosting": dict(input_size=160, num_columns=256, num_active_columns=12, potential_pct=0.5, boost_strength=3.0,
                     duty_cycle_period=30, streams=3),
    # sparse pools: the threshold removes winners
    "threshold": dict(input_size=200, num_columns=256, num_active_columns=16, potential_pct=0.1, stimulus_threshold=3,
                      syn_perm_connected=0.3, syn_perm_active_inc=0.02, syn_perm_inactive_dec=0.2, streams=2),
    # strong boosts let columns with fewer connected synapses than the threshold win: learning raises them
    "threshold_boosting": dict(input_size=200, num_columns=256, num_active_columns=16, potential_pct=0.1,
                               stimulus_threshold=3, syn_perm_connected=0.3, syn_perm_inactive_dec=0.2,
                               boost_strength=10.0, duty_cycle_period=20, streams=2),
    # columns that rarely overlap fall under the minimum duty cycle and get bumped
    "bumps": dict(input_size=300, num_columns=200, local_area_density=0.05, potential_pct=0.05,
                  min_pct_overlap_duty_cycle=0.5, duty_cycle_period=40, streams=2),
    "bumps_topology": dict(input_size=128, num_columns=128, num_active_columns=10, potential_radius=10,
                           potential_pct=0.5, min_pct_overlap_duty_cycle=0.9, syn_perm_inactive_dec=0.05, streams=2),
}
ACTIVE_BITS = {"plain": 16, "boosting": 16, "threshold": 12, "threshold_boosting": 12, "bumps": 8,
               "bumps_topology": 12}


def _run_pair(name, steps, monkeypatch=None):
    kw = CONFIGS[name]
    ref = SpatialPooler(**kw, backend="torch", seed=5)
    nat = SpatialPooler(**kw, backend="native", seed=5)
    assert nat.uses_native and not ref.uses_native
    raised = []
    if monkeypatch is not None:  # count raise-to-threshold events on the torch path
        original = ref._raise_to_threshold
        monkeypatch.setattr(ref, "_raise_to_threshold", lambda rows: raised.append(original(rows)) or raised[-1])
    xs = _inputs(steps, kw["input_size"], ACTIVE_BITS[name], kw["streams"], seed=1)
    stats = {"bumped": 0, "partial": 0}
    for t, x in enumerate(xs):
        learn = t % 11 != 5
        a, b = ref.compute(x, learn=learn), nat.compute(x, learn=learn)
        assert torch.equal(a, b), f"{name}: active columns differ at step {t}"
        assert torch.equal(ref.overlaps, nat.overlaps), f"{name}: overlaps differ at step {t}"
        if learn:
            assert torch.equal(ref.bumped, nat.bumped), f"{name}: bumps differ at step {t}"
            stats["bumped"] += int(nat.bumped.sum())
        stats["partial"] += int(((b.sum(1) > 0) & (b.sum(1) < nat._n_desired())).sum())
        if t % 25 == 0:
            _assert_same_state(ref, nat)
    _assert_same_state(ref, nat)
    stats["raised"] = sum(map(bool, raised))
    return ref, nat, stats


@needs_native
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_native_equals_torch_step_by_step(name, monkeypatch):
    ref, nat, stats = _run_pair(name, 220, monkeypatch)
    if "boosting" in name:
        assert not torch.all(nat.boost == 1.0)  # the boost factors really moved
    if name.startswith("threshold"):
        assert stats["partial"] > 0  # the stimulus threshold dropped some of the n best columns
    if name == "threshold_boosting":
        assert stats["raised"] > 0  # winners left with too few connected synapses were raised
    if name.startswith("bumps"):
        assert stats["bumped"] > 0
    # the kernel's connected bitsets still agree with the permanences
    assert torch.equal(nat._bits, native_sp.connected_bits(nat, 1))


@needs_native
def test_ties_all_columns_and_empty_inputs():
    # all overlaps equal (empty input): the highest column ids win, as on the torch path
    sp = SpatialPooler(50, num_columns=64, num_active_columns=5, streams=2, backend="native")
    out = sp.compute(torch.zeros(2, 50, dtype=torch.bool))
    assert torch.equal(out[0].nonzero().squeeze(1), torch.arange(59, 64))
    # density 1: every column wins
    kw = dict(input_size=50, num_columns=64, local_area_density=1.0, streams=2)
    a, b = SpatialPooler(**kw, backend="torch"), SpatialPooler(**kw, backend="native")
    for t, x in enumerate(_inputs(6, 50, 6, 2, seed=3)):
        out = b.compute(x, learn=t % 2 == 0)
        assert torch.equal(a.compute(x, learn=t % 2 == 0), out) and bool(out.all())
    _assert_same_state(a, b)


@needs_native
def test_thread_count_does_not_change_results(monkeypatch):
    kw = CONFIGS["boosting"]
    xs = _inputs(40, kw["input_size"], 16, kw["streams"], seed=2)
    outs = []
    for threads in ("1", "3"):
        monkeypatch.setenv("COGSIM_HTM_THREADS", threads)
        sp = SpatialPooler(**kw, backend="native")
        outs.append((torch.stack([sp.compute(x) for x in xs]), sp))
    assert torch.equal(outs[0][0], outs[1][0])
    _assert_same_state(outs[0][1], outs[1][1])


@needs_native
@pytest.mark.parametrize("src,dst", [("native", "torch"), ("torch", "native")])
def test_state_dict_moves_between_backends(src, dst):
    kw = CONFIGS["threshold_boosting"]
    xs = _inputs(120, kw["input_size"], 12, kw["streams"], seed=4)
    sp = SpatialPooler(**kw, backend=src)
    for x in xs[:70]:
        sp.compute(x)
    buf = io.BytesIO()
    torch.save(sp.state_dict(), buf)
    buf.seek(0)
    clone = SpatialPooler(**kw, backend=dst, seed=77)
    clone.load_state_dict(torch.load(buf))
    _assert_same_state(sp, clone)
    for t, x in enumerate(xs[70:]):
        assert torch.equal(sp.compute(x, learn=t % 5 != 0), clone.compute(x, learn=t % 5 != 0))
    _assert_same_state(sp, clone)


@needs_native
def test_backend_switches_pickles_and_copies_continue_exactly():
    kw = CONFIGS["bumps"]
    xs = _inputs(150, kw["input_size"], 8, kw["streams"], seed=6)
    ref = SpatialPooler(**kw, backend="torch")
    sp = SpatialPooler(**kw)
    assert sp.backend == "auto" and sp.uses_native
    for t, x in enumerate(xs[:100]):
        if t % 20 == 0:  # alternate backends mid-run: each rebuilds its view of the connected synapses
            sp.backend = "torch" if sp.uses_native else "native"
        assert torch.equal(ref.compute(x), sp.compute(x)), t
    _assert_same_state(ref, sp)
    sp.backend = "auto"
    twin = copy.deepcopy(sp)
    buf = io.BytesIO()
    torch.save(sp, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    assert twin.uses_native and loaded.uses_native
    for x in xs[100:]:
        out = ref.compute(x)
        for p in (sp, twin, loaded):
            assert torch.equal(p.compute(x), out)
    for p in (sp, twin, loaded):
        _assert_same_state(ref, p)


def test_local_inhibition_and_switches_fall_back_to_torch(monkeypatch):
    local = SpatialPooler(100, num_columns=64, global_inhibition=False, local_area_density=0.1, potential_radius=8)
    assert not local.uses_native
    with pytest.raises(ValueError, match="global inhibition"):
        SpatialPooler(100, num_columns=64, global_inhibition=False, local_area_density=0.1, backend="native")
    with pytest.raises(ValueError, match="backend must be one of"):
        SpatialPooler(100, num_columns=64, num_active_columns=4, backend="c")
    monkeypatch.setenv("COGSIM_HTM_NATIVE", "0")
    assert not SpatialPooler(100, num_columns=64, num_active_columns=4).uses_native
    with pytest.raises(ValueError, match="COGSIM_HTM_NATIVE"):
        SpatialPooler(100, num_columns=64, num_active_columns=4, backend="native")


@pytest.mark.parametrize("env", [("COGSIM_HTM_SP_NATIVE", "0"), ("CC", "/nonexistent/cc")])
def test_without_the_library_auto_runs_torch(env, monkeypatch, capsys):
    monkeypatch.setenv(*env)
    monkeypatch.setattr(cogsim.native, "_warned_no_compiler", False)
    native_sp.LIBRARY.reset()
    try:
        sp = SpatialPooler(100, num_columns=64, num_active_columns=4, streams=2)
        assert ("no C compiler" in capsys.readouterr().err) == (env[0] == "CC")  # said once, on stderr
        assert not sp.uses_native
        assert sp.compute(_inputs(1, 100, 10, 2, seed=0)[0]).sum(1).tolist() == [4, 4]
        with pytest.raises(ValueError, match="C compiler"):
            SpatialPooler(100, num_columns=64, num_active_columns=4, backend="native")
    finally:
        monkeypatch.undo()
        native_sp.LIBRARY.reset()
