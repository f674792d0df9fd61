"""``fused="compile"`` (torch.compile of the per-step loop) equals snntorch. Compiling takes 10-80 s
on a 2-core CPU, so this runs only with COGSIM_TEST_COMPILE=1 (``cogsim bench snn`` also checks the
compiled path's spikes against snntorch before timing it)."""
from __future__ import annotations

import os

import pytest
import snntorch
import torch

from cogsim.snn import lif_sequence, synaptic_sequence

pytestmark = pytest.mark.skipif(os.environ.get("COGSIM_TEST_COMPILE") != "1",
                                reason="torch.compile is slow here; set COGSIM_TEST_COMPILE=1")


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_compiled_loop_matches_snntorch(reset):
    x = (torch.randn(6, 3, 8) * 0.6 + 0.3).requires_grad_(True)
    ref = snntorch.Leaky(beta=0.85, reset_mechanism=reset)
    mem, outs = torch.zeros(3, 8), []
    for t in range(6):
        spk, mem = ref(x[t], mem)
        outs.append((spk, mem))
    ref_spk, ref_mem = (torch.stack(z) for z in zip(*outs))
    ref_gx = torch.autograd.grad(ref_spk.sum() + ref_mem.square().sum(), x)[0]
    spk, mem = lif_sequence(x, beta=0.85, reset=reset, fused="compile")
    assert torch.equal(spk, ref_spk) and torch.equal(mem, ref_mem)
    gx = torch.autograd.grad(spk.sum() + mem.square().sum(), x)[0]
    assert torch.allclose(gx, ref_gx, rtol=1e-5, atol=1e-6)


def test_compiled_synaptic_matches_the_loop():
    x = torch.randn(6, 3, 8).requires_grad_(True)
    ref = synaptic_sequence(x, alpha=0.7, beta=0.9, fused="loop")
    got = synaptic_sequence(x, alpha=0.7, beta=0.9, fused="compile")
    for r, g in zip(ref, got):
        assert torch.equal(r, g)
