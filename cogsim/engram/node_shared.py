"""``placement: host`` with several ranks on one node: one table per node in shared memory.

Every local rank maps the same file in ``/dev/shm`` (rows, then the row-wise optimizer state): the
node holds one copy of the table however many ranks it runs, and each rank gathers and prefetches
its own rows from it. The lowest rank of the node creates and initialises the file; once every
local rank has mapped it, the name is unlinked, so the memory goes away with the last process even
after a crash.

Updates are lock-free per row: every rank learns all ranks' row gradients (an all-gather, as for a
replicated table), and local rank k writes only the touched rows r with r mod L = k (L local
ranks), so no row ever has two writers. Reads and writes never overlap: a step's forward reads are
over before the gradient all-gather completes, and a barrier after the writes precedes any read of
the next step (a prefetch started earlier re-reads the updated rows after the barrier), so no rank
ever sees half a row. Nodes each hold a copy and apply the same updates.
"""
from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

import numpy as np
import torch

from cogsim.engram import exchange
from cogsim.engram.sparse_optim import STATE_SLOTS, RowwiseOptimizer
from cogsim.engram.tables import EngramTable, format_bytes

SHM = Path("/dev/shm")


def node_ranks() -> int:
    """Ranks of this node sharing the table (torchrun's ``LOCAL_WORLD_SIZE``; 1 for one process)."""
    if not exchange.active():
        return 1
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1"))


class NodeSharedTable(EngramTable):
    """A ``host`` table mapped by every local rank from one shared-memory file (see the module doc)."""

    def __init__(self, rows: int, dim: int, *, seed: int = 0, std: float = 1.0, what: str = "engram") -> None:
        super().__init__(rows, dim, "host", seed=seed, std=std, what=what)

    def _allocate_host(self) -> None:
        ex = self._exchange
        node = f"{socket.gethostname()}/{os.environ.get('GROUP_RANK', '0')}"
        name = f"cogsim-engram-{uuid.uuid4().hex}.f32"
        everyone = [None] * ex.size
        torch.distributed.all_gather_object(everyone, (node, name), group=ex.group)
        local = [r for r, (n, _) in enumerate(everyone) if n == node]
        self.local_rank, self.local_size = local.index(ex.rank), len(local)
        self.leader = local[0] == ex.rank
        folder = SHM if SHM.is_dir() else Path(os.environ.get("TMPDIR", "/tmp"))
        path = folder / everyone[local[0]][1]
        if self.leader:
            fs = os.statvfs(folder)
            free = fs.f_bavail * fs.f_frsize
            if self.nbytes > free:
                raise ValueError(f"{self.what}: a host table shared by this node's ranks needs "
                                 f"{format_bytes(self.nbytes)} in {folder}, only {format_bytes(free)} is free; "
                                 "use placement: sharded or a smaller table")
            self._map(path, create=True)
            step = max(1, (1 << 22) // self.dim)
            for start in range(0, self.rows, step):
                stop = min(self.rows, start + step)
                self._weight[start:stop] = self._initial_rows(False, start, stop)
        ex.barrier()  # the file exists and holds the initial rows
        if not self.leader:
            self._map(path, create=False)
        ex.barrier()  # every local rank has mapped it: the name can go
        if self.leader:
            path.unlink(missing_ok=True)

    def _map(self, path: Path, create: bool) -> None:
        records = np.memmap(path, dtype=np.float32, mode="w+" if create else "r+",
                            shape=(self.rows * (self.dim + STATE_SLOTS),))
        self._maps = [records]  # keeps the mapping alive with the table
        flat = torch.from_numpy(records)
        split = self.rows * self.dim
        self._weight = flat[:split].view(self.rows, self.dim)
        self._state = flat[split:].view(self.rows, STATE_SLOTS)

    def memory_estimate(self) -> dict[str, int]:
        return {"host_tables_per_node": self.nbytes}

    def apply_gradients(self, idx: torch.Tensor, grad: torch.Tensor, optimizer: RowwiseOptimizer,
                        lr: float) -> torch.Tensor | None:
        """All ranks' gradients averaged; this rank writes its share of the node's rows, then waits
        until every local rank has written. Collective."""
        ex = self._exchange
        idx, grad = exchange.sum_rows(ex.all_gather(idx), ex.all_gather(grad / ex.size))
        mine = torch.remainder(idx, self.local_size) == self.local_rank
        self.update(idx[mine], grad[mine], optimizer, lr)
        ex.barrier()
        return idx

    def load_sparse_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """The node's leader writes the checkpoint's rows into the shared table. Collective."""
        if self._exchange is None or self.leader:
            super().load_sparse_state_dict(state)
        if self._exchange is not None:
            self._exchange.barrier()

    def close(self) -> None:
        self._maps = []

    def __getstate__(self):
        raise TypeError(f"{self.what}: a host table shared by a node's ranks cannot be copied or pickled")
