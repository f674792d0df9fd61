"""Row-wise sparse optimizers: the documented update, two scalars per row, only touched rows move."""
from __future__ import annotations

import math

import pytest
import torch

from cogsim.engram.sparse_optim import RowwiseAdagrad, RowwiseAdam, make_optimizer
from cogsim.engram.tables import EngramTable


def reference_step(kind, w, s, t, g, lr, beta2, eps):
    """One row, plain Python floats."""
    ms = sum(x * x for x in g) / len(g)
    t += 1
    if kind == "adam":
        s = beta2 * s + (1 - beta2) * ms
        denom = math.sqrt(s / (1 - beta2 ** t)) + eps
    else:
        s = s + ms
        denom = math.sqrt(s) + eps
    return [wi - lr * gi / denom for wi, gi in zip(w, g)], s, t


@pytest.mark.parametrize("kind", ["adam", "adagrad"])
def test_update_matches_per_row_reference(kind):
    torch.manual_seed(0)
    opt = make_optimizer(kind, beta2=0.9, eps=1e-6)
    w = torch.randn(5, 3)
    state = torch.zeros(5, 2)
    ref = [(w[i].tolist(), 0.0, 0) for i in range(5)]
    for step in range(4):
        g = torch.randn(5, 3) * (step + 1)
        w, state = opt.update(w, state, g, lr=0.1)
        ref = [reference_step(kind, rw, rs, rt, g[i].tolist(), 0.1, 0.9, 1e-6) for i, (rw, rs, rt) in enumerate(ref)]
    for i, (rw, rs, rt) in enumerate(ref):
        torch.testing.assert_close(w[i], torch.tensor(rw), rtol=1e-5, atol=1e-6)
        assert state[i, 1] == rt == 4
        assert state[i, 0].item() == pytest.approx(rs, rel=1e-5)


def test_first_adam_step_moves_each_element_by_about_lr():
    opt = RowwiseAdam(beta2=0.999, eps=1e-12)
    g = torch.tensor([[3.0, -3.0, 3.0, -3.0]])
    w, state = opt.update(torch.zeros(1, 4), torch.zeros(1, 2), g, lr=0.01)
    torch.testing.assert_close(w, torch.tensor([[-0.01, 0.01, -0.01, 0.01]]))


def test_table_update_touches_only_given_rows_and_keeps_two_scalars():
    table = EngramTable(50, 4, "device", seed=3)
    before = table.weight.clone()
    idx = torch.tensor([2, 7, 31])
    table.update(idx, torch.ones(3, 4), RowwiseAdagrad(), lr=0.5)
    changed = (table.weight != before).any(1).nonzero().squeeze(1)
    assert changed.tolist() == [2, 7, 31]
    assert table.opt_state.shape == (50, 2)
    assert table.opt_state[:, 1].sum() == 3 and table.rows_written() == 3
    torch.testing.assert_close(table.weight[idx], before[idx] - 0.5 * 1 / (1 + 1e-8))


def test_bad_optimizer_settings():
    with pytest.raises(ValueError, match="optimizer"):
        make_optimizer("sgd")
    with pytest.raises(ValueError, match="beta2"):
        RowwiseAdam(beta2=1.0)
