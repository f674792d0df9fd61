"""The native kernels: built once into the cache, reused, and a missing or broken compiler falls
back to the torch path with the same results."""
from __future__ import annotations

import warnings

import pytest
import torch

import cogsim.native
from cogsim.snn import lif_sequence, native, synaptic_sequence
from cogsim.snn.lif import resolve_backend


@pytest.fixture
def fresh_native(monkeypatch):
    """A clean in-process kernel state (restored afterwards)."""
    monkeypatch.setattr(native.LIBRARY, "_state", {})
    return monkeypatch


def test_kernel_library_is_cached_on_disk(fresh_native):
    assert native.library() is not None  # built (or found) in this session's COGSIM_CACHE
    built = native.LIBRARY.built_files()
    assert len(built) == 1
    stamp = built[0].stat().st_mtime_ns
    native.LIBRARY.reset()
    assert native.library() is not None  # loaded again, not rebuilt
    assert native.LIBRARY.built_files() == built and built[0].stat().st_mtime_ns == stamp


@pytest.mark.parametrize("env,value,reason", [("COGSIM_SNN_NATIVE", "0", "disabled"),
                                              ("CC", "/nonexistent/cc", "no C compiler"),
                                              ("CC", "false", "unavailable")])
def test_falls_back_to_torch_without_kernels(fresh_native, tmp_path, env, value, reason):
    fresh_native.setenv("COGSIM_CACHE", str(tmp_path))
    fresh_native.setenv(env, value)
    x = (torch.randn(20, 3, 8) * 0.6 + 0.3).requires_grad_(True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert native.library() is None
    assert reason in native.status()
    assert resolve_backend(True, x, "subtract") == "torch"
    spk, mem = lif_sequence(x, beta=0.9, fused="native")  # asks for native, runs the torch path
    gx = torch.autograd.grad(mem.sum() + spk.sum(), x)[0]
    ref_spk, ref_mem = lif_sequence(x, beta=0.9, fused="loop")
    ref_gx = torch.autograd.grad(ref_mem.sum() + ref_spk.sum(), x)[0]
    assert torch.equal(spk, ref_spk) and torch.equal(mem, ref_mem)
    assert torch.allclose(gx, ref_gx, atol=1e-5)


def test_native_and_torch_paths_agree_on_large_and_odd_shapes():
    """Neuron counts that are not multiples of the kernel's block/vector sizes, split over threads."""
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(9, 3, 4097, generator=gen) * 0.6 + 0.3).requires_grad_(True)
    g = torch.randn(9, 3, 4097, generator=gen)
    thr = (torch.rand(4097, generator=gen) + 0.5).requires_grad_(True)
    res = {}
    for fused in ("native", "torch"):
        spk, syn, mem = synaptic_sequence(x, alpha=0.7, beta=0.9, threshold=thr, reset="zero", fused=fused)
        res[fused] = (spk, syn, mem, *torch.autograd.grad((spk * g).sum() + mem.sum(), (x, thr)))
    n, t = res["native"], res["torch"]
    assert torch.equal(n[0], t[0]) and torch.equal(n[1], t[1]) and torch.equal(n[2], t[2])
    assert torch.allclose(n[3], t[3], rtol=1e-5, atol=1e-5) and torch.allclose(n[4], t[4], rtol=1e-4, atol=1e-4)


def test_results_do_not_depend_on_the_kernel_threads(monkeypatch):
    """Neuron ranges split over 1 or 3 threads (forced past the work-size choice) give the same bits."""
    gen = torch.Generator().manual_seed(1)
    x = (torch.randn(7, 2, 1001, generator=gen) * 0.6 + 0.3).requires_grad_(True)
    g = torch.randn(7, 2, 1001, generator=gen)
    beta = torch.full((1001,), 0.8).requires_grad_(True)
    monkeypatch.setattr(native, "WORK_PER_THREAD", 1)
    res = []
    try:
        for n in (1, 3):
            cogsim.native.set_max_threads(n)
            assert native.threads_for(7, 2 * 1001) == n
            spk, syn, mem = synaptic_sequence(x, alpha=0.7, beta=beta, reset="subtract", fused="native")
            spk2, mem2 = lif_sequence(x, beta=beta, reset="zero", fused="native")
            loss = (spk * g).sum() + mem.sum() + syn.sum() + (spk2 * g).sum() + mem2.sum()
            res.append((spk, syn, mem, spk2, mem2, *torch.autograd.grad(loss, (x, beta))))
    finally:
        cogsim.native.set_max_threads(None)
    assert all(torch.equal(a, b) for a, b in zip(*res))


def test_bad_arguments_are_clear():
    with pytest.raises(ValueError, match="reset must be one of"):
        lif_sequence(torch.zeros(3, 2), beta=0.9, reset="soft")
    with pytest.raises(ValueError, match="fused must be"):
        lif_sequence(torch.zeros(3, 2), beta=0.9, fused="cuda")
    with pytest.raises(ValueError, match=r"beta of shape \(3,\) does not broadcast"):
        lif_sequence(torch.zeros(3, 2), beta=torch.ones(3))
    with pytest.raises(ValueError, match="leading time axis"):
        lif_sequence(torch.zeros(0, 2), beta=0.9)
