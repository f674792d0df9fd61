"""Collectives of an Engram table shared by data-parallel ranks (torch.distributed).

Each table gets its own process group, made when the table is built (every rank builds the same
model in the same order, so the groups line up): its lookups may run in the prefetch thread while
the main thread's DistributedDataParallel uses the default group.

Rows travel by ``all_to_all_single`` with variable splits, which gloo implements (its list form
``all_to_all`` accepts only equal sizes, so it is not used) and NCCL too; every exchange first
trades the per-rank counts (an all-to-all of N integers), then the data. Tensors must be on the
CPU for gloo and on the GPU for NCCL: a table whose rows stay in host memory gets a gloo group even
when the ranks train on GPUs with NCCL.
"""
from __future__ import annotations

import torch
import torch.distributed as dist


def active() -> bool:
    """Whether this process is one of several ranks (torch.distributed is initialised)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class RowExchange:
    """The ranks' collectives for one table, on a process group of its own."""

    def __init__(self, host_rows: bool = False) -> None:
        self.rank, self.size = dist.get_rank(), dist.get_world_size()
        backend = "gloo" if host_rows and dist.get_backend() != "gloo" else None
        self.group = dist.new_group(ranks=list(range(self.size)), backend=backend)
        self.stats = {"exchanges": 0, "rows_sent": 0, "seconds": 0.0}

    def all_to_all(self, send: torch.Tensor, send_counts: torch.Tensor,
                   recv_counts: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows ``send`` (grouped by destination rank, ``send_counts[k]`` rows for rank k) →
        (rows received, grouped by source rank; counts received per rank). ``recv_counts`` when
        already known (a reply) saves the count exchange."""
        import time

        t0 = time.perf_counter()
        send_counts = send_counts.to(device=send.device, dtype=torch.int64)
        if recv_counts is None:
            recv_counts = torch.empty_like(send_counts)
            dist.all_to_all_single(recv_counts, send_counts, group=self.group)
        recv = send.new_empty((int(recv_counts.sum()), *send.shape[1:]))
        dist.all_to_all_single(recv, send.contiguous(), recv_counts.tolist(), send_counts.tolist(), group=self.group)
        self.stats["exchanges"] += 1
        self.stats["rows_sent"] += int(send.shape[0])
        self.stats["seconds"] += time.perf_counter() - t0
        return recv, recv_counts

    def _padded(self, tensor: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
        """``tensor`` padded to the most rows any rank has (collectives need equal shapes), and
        every rank's row count."""
        n = torch.tensor([tensor.shape[0]], dtype=torch.int64, device=tensor.device)
        sizes = [torch.empty_like(n) for _ in range(self.size)]
        dist.all_gather(sizes, n, group=self.group)
        sizes = [int(s) for s in sizes]
        padded = tensor.new_zeros((max(sizes), *tensor.shape[1:]))
        padded[: tensor.shape[0]] = tensor
        return padded, sizes

    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Every rank's ``tensor`` (any number of rows) concatenated in rank order."""
        padded, sizes = self._padded(tensor)
        parts = [torch.empty_like(padded) for _ in range(self.size)]
        dist.all_gather(parts, padded, group=self.group)
        return torch.cat([p[:s] for p, s in zip(parts, sizes)])

    def gather_to_main(self, tensor: torch.Tensor) -> torch.Tensor | None:
        """Every rank's ``tensor`` concatenated in rank order, on rank 0 (None elsewhere)."""
        padded, sizes = self._padded(tensor)
        parts = [torch.empty_like(padded) for _ in range(self.size)] if self.rank == 0 else None
        dist.gather(padded, parts, dst=0, group=self.group)
        return torch.cat([p[:s] for p, s in zip(parts, sizes)]) if self.rank == 0 else None

    def barrier(self) -> None:
        dist.barrier(group=self.group)


def owner_order(idx: torch.Tensor, per: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For global rows ``idx`` of a table split in blocks of ``per`` rows: (a permutation grouping
    them by owner rank, the count per owner)."""
    owner = torch.div(idx, per, rounding_mode="floor")
    order = torch.argsort(owner, stable=True)
    return order, torch.bincount(owner, minlength=size)


def sum_rows(rows: torch.Tensor, grads: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sorted unique rows, the sum of ``grads`` per row, added in the order given)."""
    unique, inverse = torch.unique(rows, sorted=True, return_inverse=True)
    summed = torch.zeros(len(unique), grads.shape[1], dtype=torch.float32, device=grads.device)
    summed.index_add_(0, inverse, grads.to(torch.float32))
    return unique, summed
