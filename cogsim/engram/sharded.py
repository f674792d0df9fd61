"""``placement: sharded``: an Engram table split by rows across data-parallel ranks.

Rank r of N owns the contiguous block of rows [r·P, (r+1)·P), P = ceil(rows / N), and their
row-wise optimizer state, on its compute device (the CPU with gloo, its GPU with NCCL). Rows are
initialised by the same counter hash as every placement, so a shard holds exactly the rows an
unsharded table would. Contiguous blocks (TorchRec's row-wise sharding) rather than rows modulo N:
a checkpoint then reshards by reading row ranges (:func:`cogsim.train.checkpoint.read_rows`); the
hash spreads each head's rows uniformly over its range, so the blocks see similar traffic.

A lookup is collective: each rank sends the (unique, hashed) rows it needs to their owners and gets
the rows back, two variable-split all-to-alls (:mod:`cogsim.engram.exchange`). It runs in the
prefetch thread, for the next batch while the current step runs. In :meth:`apply_gradients`
every rank sends its row gradients to the owners, which sum them (in rank order), average them
over the ranks and update their rows; the updated row ids go to every rank so prefetched rows are
re-read only where they changed. With one process the table is one shard and nothing is sent.
"""
from __future__ import annotations

from typing import Callable

import torch

from cogsim.engram import exchange
from cogsim.engram.sparse_optim import STATE_SLOTS, RowwiseOptimizer
from cogsim.engram.tables import EngramTable, check_fits, host_empty


class ShardedTable(EngramTable):
    """This rank's block of rows of a table split across ranks (see the module doc)."""

    def __init__(self, rows: int, dim: int, *, seed: int = 0, std: float = 1.0, what: str = "engram") -> None:
        super().__init__(rows, dim, "sharded", seed=seed, std=std, what=what)
        self._exchange = exchange.RowExchange() if exchange.active() else None
        size, rank = (self._exchange.size, self._exchange.rank) if self._exchange else (1, 0)
        self._split(size, rank)
        check_fits(self.shard_bytes, "host", what)
        self._weight = self._initial_rows(False, self.start, self.stop)
        self._state = host_empty((self.stop - self.start, STATE_SLOTS)).zero_()

    def _split(self, size: int, rank: int) -> None:
        self.per = max(1, -(-self.rows // size))
        self.start, self.stop = min(self.rows, rank * self.per), min(self.rows, (rank + 1) * self.per)

    @property
    def shard_bytes(self) -> int:
        return (self.stop - self.start) * (self.dim + STATE_SLOTS) * 4

    @property
    def device(self) -> torch.device:
        return self._weight.device

    @property
    def collective(self) -> bool:
        return self._exchange is not None

    def memory_estimate(self) -> dict[str, int]:
        return {"sharded_tables_per_rank": self.shard_bytes}

    # ---- rows ----
    def read(self, idx: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """Rows ``idx`` (global, on :attr:`device`), fetched from their owners. Collective."""
        ex = self._exchange
        if ex is None:
            return self._read_local(idx, out)
        order, counts = exchange.owner_order(idx, self.per, ex.size)
        asked, asked_counts = ex.all_to_all(idx[order], counts)
        mine = self._read_local(asked - self.start)
        got, _ = ex.all_to_all(mine, asked_counts, counts)
        if out is None:
            out = torch.empty(len(idx), self.dim, dtype=torch.float32, device=idx.device)
        out[order.to(out.device)] = got.to(out.device)
        return out

    def apply_gradients(self, idx: torch.Tensor, grad: torch.Tensor, optimizer: RowwiseOptimizer,
                        lr: float) -> torch.Tensor | None:
        """Send this rank's row gradients to their owners; each owner updates its rows with the
        gradients of all ranks averaged. Collective. Returns every rank's updated rows (sorted), so
        rows prefetched for the next batch are re-read only where they changed."""
        ex = self._exchange
        if ex is None:
            self.update(idx, grad, optimizer, lr)
            return idx
        order, counts = exchange.owner_order(idx, self.per, ex.size)
        rows, got = ex.all_to_all(idx[order], counts)
        grads, _ = ex.all_to_all((grad / ex.size)[order], counts, got)
        rows, grads = exchange.sum_rows(rows, grads)
        self.update(rows - self.start, grads, optimizer, lr)
        return torch.unique(ex.all_gather(rows))

    # ---- checkpoints ----
    def sparse_state_dict(self) -> dict[str, torch.Tensor]:
        return {}  # the rows travel as row shards

    def load_sparse_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        pass

    def row_shards(self) -> dict[str, tuple[torch.Tensor, int, int]]:
        return {"weight": (self._weight, self.start, self.rows), "opt_state": (self._state, self.start, self.rows)}

    def load_row_shards(self, read: Callable[[str, int, int], torch.Tensor]) -> None:
        with self._lock:
            for name, dst in (("weight", self._weight), ("opt_state", self._state)):
                src = read(name, self.start, self.stop)
                if tuple(src.shape) != tuple(dst.shape):
                    raise ValueError(f"{self.what}: saved {name} rows have shape {tuple(src.shape)}, "
                                     f"this shard {tuple(dst.shape)}")
                dst.copy_(src)

    def gather_rows_to_main(self) -> None:
        """Rank 0 takes every row (and becomes an unsharded table); the others drop theirs.
        Collective."""
        ex = self._exchange
        if ex is None:
            return
        weight, state = ex.gather_to_main(self._weight), ex.gather_to_main(self._state)
        self._exchange = None
        if ex.rank == 0:
            self._weight, self._state = weight, state
            self._split(1, 0)
        else:
            self._weight, self._state = self._weight[:0], self._state[:0]
            self.start = self.stop = 0

    # ---- module plumbing ----
    def _apply(self, fn, recurse=True):
        """The shard follows the module to the compute device (float32 whatever the module's dtype)."""
        try:
            target = fn(torch.zeros(0)).device
        except Exception:  # noqa: BLE001 - an exotic fn: stay where we are
            target = self._weight.device
        if target != self._weight.device:
            if target.type == "cuda":
                check_fits(self.shard_bytes, "device", self.what, device=target)
            self._weight, self._state = self._weight.to(target), self._state.to(target)
        return super()._apply(fn, recurse)

    def extra_repr(self) -> str:
        return f"rows={self.rows}, dim={self.dim}, placement=sharded, shard=[{self.start}, {self.stop})"
