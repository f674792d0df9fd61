"""Every shipped architecture builds, is causal end to end, and learns on a tiny batch."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import cogsim
from cogsim.train.trainer import make_optimizer

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURES = sorted((ROOT / "architectures").glob("*.yaml"))
SMALL = ["model.d_model=64", "model.n_heads=2", "model.vocab_size=300"]


@pytest.mark.parametrize("arch", ARCHITECTURES, ids=lambda p: p.stem)
def test_architecture_is_causal(arch):
    torch.manual_seed(0)
    model = cogsim.build_model(arch, vocab_size=300, overrides=SMALL).eval()
    ids = torch.randint(0, 300, (2, 24))
    changed = ids.clone()
    changed[:, 15:] = torch.randint(0, 300, (2, 9))
    with torch.no_grad():
        a, b = model(ids), model(changed)
    assert torch.equal(a[:, :15], b[:, :15])
    assert not torch.allclose(a[:, 15:], b[:, 15:])


@pytest.mark.parametrize("arch", ARCHITECTURES, ids=lambda p: p.stem)
def test_architecture_learns_a_repeated_batch(arch):
    torch.manual_seed(0)
    model = cogsim.build_model(arch, vocab_size=300, overrides=SMALL).train()
    spec = model.plan.spec
    opt = make_optimizer(model, spec.train)
    ids = torch.randint(0, 300, (2, 25))
    losses = []
    for _ in range(8):
        loss = F.cross_entropy(model(ids[:, :-1]).flatten(0, 1), ids[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        for _, comp in model.components():
            comp.sparse_step(spec.train.lr)
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.5, losses
