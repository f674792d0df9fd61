"""Top-k competition: exactly min(k, M) writers per position, losers write nothing and (without the
straight-through estimator) get no gradient; with it, only their bids learn."""
import pytest
import torch

from cogsim.workspace.competition import compete


def _logits(m, seed=0, shape=(2, 9, 5)):
    return torch.randn(*shape, m, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("m", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_at_most_k_writers(m, k):
    comp = compete(_logits(m), k)
    assert comp.bids.shape == (2, 9, m) and comp.write.shape == (2, 9, 5, m)
    assert (comp.winners.sum(-1) == min(k, m)).all()
    assert torch.allclose(comp.bids.sum(-1), torch.ones(2, 9, dtype=torch.float64))
    assert torch.allclose(comp.write.sum(-1), torch.ones(2, 9, 5, dtype=torch.float64))
    writers = (comp.write > 0).any(-2)  # candidates writing into any slot at a position
    assert torch.equal(writers, comp.winners)


def test_winners_have_the_highest_bids():
    comp = compete(_logits(5, seed=3), 2)
    lowest_winner = comp.bids.masked_fill(~comp.winners, float("inf")).min(-1).values
    highest_loser = comp.bids.masked_fill(comp.winners, float("-inf")).max(-1).values
    assert (lowest_winner >= highest_loser).all()


def test_write_is_softmax_over_winners():
    logits = _logits(4)
    comp = compete(logits, 2)
    expected = logits.masked_fill(~comp.winners[..., None, :], float("-inf")).softmax(-1)
    assert torch.allclose(comp.write, expected, atol=1e-15)


def test_losers_get_no_gradient_without_straight_through():
    logits = _logits(4).requires_grad_()
    comp = compete(logits, 2, straight_through=False)
    (comp.write * torch.randn_like(comp.write)).sum().backward()
    loser_grad = logits.grad.masked_select(~comp.winners[..., None, :].expand_as(logits))
    winner_grad = logits.grad.masked_select(comp.winners[..., None, :].expand_as(logits))
    assert torch.equal(loser_grad, torch.zeros_like(loser_grad))
    assert winner_grad.abs().sum() > 0


def test_straight_through_same_forward_and_losers_bids_learn():
    logits = _logits(4).requires_grad_()
    plain = compete(logits, 2, straight_through=False)
    st = compete(logits, 2, straight_through=True)
    assert torch.equal(plain.write, st.write) and torch.equal(plain.winners, st.winners)
    (st.write * torch.randn_like(st.write)).sum().backward()
    loser_grad = logits.grad.masked_select(~st.winners[..., None, :].expand_as(logits))
    assert loser_grad.abs().sum() > 0
