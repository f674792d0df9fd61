"""Run by torchrun (2 ranks, gloo) from test_dist_engram.py: checks of Engram tables shared by
ranks. Each check raises AssertionError on a mismatch; the script prints one line per check passed."""
from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path

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


def shared_host_updates(rank: int) -> None:
    """Two ranks of one node share one host table in /dev/shm. Concurrent updates of disjoint rows
    give exactly the result of applying them one after the other; a step through
    apply_gradients (overlapping rows) equals a replicated table's."""
    from cogsim.engram.node_shared import NodeSharedTable
    from cogsim.engram.sparse_optim import make_optimizer
    from cogsim.engram.tables import EngramTable, init_rows

    rows, dim, opt = 5000, 8, make_optimizer("adam")
    table = NodeSharedTable(rows, dim, seed=9, what="test")
    assert (table.local_size, table.local_rank) == (2, rank)
    weight = init_rows(9, torch.arange(rows), dim)  # the serial reference
    state = torch.zeros(rows, 2)
    assert torch.equal(table._weight, weight)

    def round_rows(r: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(1000 * k + r)
        idx = torch.unique(torch.randint(0, rows // 2, (800,), generator=g)) * 2 + r  # rank r: rows ≡ r mod 2
        return idx, torch.randn(len(idx), dim, generator=g)

    for k in range(20):
        dist.barrier()  # both ranks write at the same time
        idx, grad = round_rows(rank, k)
        table.update(idx, grad, opt, 0.01)
        for r in (0, 1):  # the reference: rank 0's rows, then rank 1's
            ridx, rgrad = round_rows(r, k)
            w, s = opt.update(weight[ridx], state[ridx], rgrad, 0.01)
            weight[ridx], state[ridx] = w, s
    dist.barrier()
    assert torch.equal(table._weight, weight), "concurrent disjoint updates differ from serial ones"
    assert torch.equal(table._state, state), "optimizer state differs from serial updates"

    replicated = EngramTable(rows, dim, "device", seed=9, what="reference")
    replicated.weight.copy_(weight)
    replicated.opt_state.copy_(state)
    g = torch.Generator().manual_seed(7 + rank)
    idx = torch.unique(torch.randint(0, rows, (1500,), generator=g))  # overlapping between ranks
    grad = torch.randn(len(idx), dim, generator=g)
    a = table.apply_gradients(idx, grad, opt, 0.02)
    b = replicated.apply_gradients(idx, grad, opt, 0.02)
    assert torch.equal(a, b)
    assert torch.equal(table._weight, replicated.weight) and torch.equal(table._state, replicated.opt_state)


CHECKS = {"sharded": sharded_equals_unsharded, "shared_host": shared_host_updates}

if __name__ == "__main__":
    dist.init_process_group("gloo", timeout=timedelta(seconds=float(os.environ.get("COGSIM_DIST_TIMEOUT", "300"))))
    torch.set_num_threads(1)
    rank = dist.get_rank()
    for name in sys.argv[1:]:
        CHECKS[name](rank)
        print(f"rank {rank}: {name} ok", flush=True)
    dist.destroy_process_group()
