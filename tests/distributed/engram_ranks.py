"""Run by torchrun (2 ranks, gloo) from test_dist_engram.py: checks of Engram tables shared by
ranks. Each check raises AssertionError on a mismatch; the script prints one line per check passed."""
from __future__ import annotations

import sys

import torch
import torch.distributed as dist

from cogsim.component import Context, Sizes
from cogsim.engram.component import EngramComponent, EngramParams

SIZES = Sizes(d_model=32, n_heads=2, seq_len=12, vocab_size=64)


def component(placement: str) -> EngramComponent:
    torch.manual_seed(0)  # the same dense weights for both placements
    params = EngramParams(max_ngram_size=3, n_head_per_ngram=2, n_embed_per_ngram=16, engram_vocab_size=[97, 89],
                          seed=5, placement=placement)
    comp = EngramComponent(params, SIZES)
    with torch.no_grad():
        comp.fusion.short_conv.weight.normal_(0, 0.3)
    return comp


def sharded_equals_unsharded(rank: int) -> None:
    """Lookups through a table sharded over the ranks equal those of a full (replicated) table,
    bit for bit; so do the dense and row gradients, and the rows after the update."""
    sharded, full = component("sharded"), component("device")
    assert sharded.table.stop - sharded.table.start < full.table.rows  # really split
    g = torch.Generator().manual_seed(100 + rank)  # each rank its own batch
    for step in range(3):
        ids = torch.randint(0, SIZES.vocab_size, (2, SIZES.seq_len), generator=g)
        x = torch.randn(2, SIZES.seq_len, SIZES.d_model, generator=g)
        outs = []
        for comp in (sharded, full):
            comp.zero_grad(set_to_none=True)
            out = comp({"x": x, "ids": ids}, Context())["out"]
            out.pow(2).mean().backward()
            outs.append(out.detach())
        assert torch.equal(outs[0], outs[1]), f"step {step}: lookups differ"
        for (name, a), b in zip(sharded.named_parameters(), full.parameters()):
            assert torch.equal(a.grad, b.grad), f"step {step}: gradient of {name} differs"
        (rows_s, grad_s, _), (rows_f, grad_f, _) = sharded._grads[0], full._grads[0]
        assert torch.equal(rows_s, rows_f) and torch.equal(grad_s, grad_f), f"step {step}: row gradients differ"
        for comp in (sharded, full):
            comp.sparse_step(0.01)
        t = sharded.table
        assert torch.equal(t._weight, full.table.weight[t.start:t.stop]), f"step {step}: updated rows differ"
        assert torch.equal(t._state, full.table.opt_state[t.start:t.stop]), f"step {step}: optimizer state differs"
        assert int((t._state[:, 1] > 0).sum()) > 0
    # the replicated tables of both ranks took the same updates
    mine = full.table.weight.clone()
    other = [torch.empty_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(other, mine)
    assert all(torch.equal(o, mine) for o in other), "replicated tables diverged"


CHECKS = {"sharded": sharded_equals_unsharded}

if __name__ == "__main__":
    dist.init_process_group("gloo")
    torch.set_num_threads(1)
    rank = dist.get_rank()
    for name in sys.argv[1:]:
        CHECKS[name](rank)
        print(f"rank {rank}: {name} ok", flush=True)
    dist.destroy_process_group()
