"""Row prefetching for Engram tables: indices from token ids alone, rows gathered ahead of use.

A fetch keeps the unique rows of a batch and gathers them into a staging buffer on the compute
device in a background thread (a side stream on CUDA), so the gather overlaps the layers before
the Engram layer; staged rows are never stale after a table update (docs/design.md §5.1). When
reads are collective (a sharded table), held rows are reused only for the very same ids tensor, so
every rank fetches at the same points.
"""
from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import torch

from cogsim.engram.tables import EngramTable


@dataclass
class FetchedRows:
    """Rows one batch of ids needs: ``rows`` (sorted unique table rows, on the table's device),
    ``inverse`` ([B, T, H] positions into ``rows``, compute device), ``staged`` ([U, dim] float32
    on the compute device) and ``event`` (CUDA: set when ``staged`` is ready)."""

    source: torch.Tensor  # the ids tensor handed in (identity + version: a cheap match)
    source_version: int
    key: torch.Tensor  # a copy of its values (the match when another tensor is handed in)
    rows: torch.Tensor
    inverse: torch.Tensor
    staged: torch.Tensor
    event: object = None

    def matches(self, ids: torch.Tensor, by_value: bool = True) -> bool:
        return _same_ids(self, ids, by_value)

    @property
    def device(self) -> torch.device:
        return self.staged.device

    def wait(self) -> None:
        """Make the current CUDA stream wait for the staged rows (no-op on CPU)."""
        if self.event is not None:
            stream = torch.cuda.current_stream(self.staged.device)
            stream.wait_event(self.event)
            for t in (self.staged, self.inverse, self.rows):
                if t.is_cuda:
                    t.record_stream(stream)
            self.event = None


class RowPrefetcher:
    """Fetches rows of ``table`` for ids; ``plan(ids)`` maps ids [B, T] to global rows [B, T, H]
    on the table's device (hashing + head offsets)."""

    def __init__(self, table: EngramTable, plan: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.table, self.plan = table, plan
        self._executor: ThreadPoolExecutor | None = None
        self._pending: _Request | None = None
        self._current: FetchedRows | None = None
        self._streams: dict[torch.device, object] = {}
        self._lock = threading.Lock()
        self._by_value = not table.collective  # reuse held rows for equal ids in another tensor
        self.stats = {"prefetched": 0, "synchronous": 0, "reused": 0, "refreshed_rows": 0, "ahead": 0}

    # ---- one fetch ----
    def fetch(self, ids: torch.Tensor, device: torch.device, key: torch.Tensor | None = None,
              version: int | None = None, ready=None) -> FetchedRows:
        """Hash, deduplicate and gather the rows for ``ids`` (runs in the caller's thread). CUDA:
        the work goes to a side stream that first waits for ``ready`` (an event recorded after
        ``key`` was made), or for the caller's current stream when no event is given."""
        device = torch.device(device)
        key = ids.detach().clone() if key is None else key
        version = ids._version if version is None else version
        side = self._side_stream(device)
        if side is not None:
            if ready is not None:
                side.wait_event(ready)
            else:
                side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):
                return self._fetch(ids, key, version, device, side)
        return self._fetch(ids, key, version, device, None)

    def _fetch(self, ids, key, version, device: torch.device, side) -> FetchedRows:
        table_device = self.table.device
        # host → device copies may be asynchronous; a device → host copy must not be (it would
        # return before the values land)
        index = self.plan(key.to(table_device, non_blocking=key.device.type == "cpu"))  # [B, T, H]
        rows, inverse = torch.unique(index.flatten(), sorted=True, return_inverse=True)
        pin = side is not None and table_device.type == "cpu"
        staging = self.table.read(rows, out=torch.empty(len(rows), self.table.dim, dtype=torch.float32,
                                                        device=table_device, pin_memory=pin))
        inverse = inverse.view(index.shape)
        event = None
        if device != table_device:
            if pin:
                inverse = inverse.pin_memory()
            staging, inverse = staging.to(device, non_blocking=True), inverse.to(device, non_blocking=True)
        if side is not None:
            event = torch.cuda.Event()
            event.record(side)
        return FetchedRows(ids, version, key, rows, inverse, staging, event)

    def _side_stream(self, device: torch.device):
        if device.type != "cuda" or not torch.cuda.is_available():
            return None
        with self._lock:
            if device not in self._streams:
                self._streams[device] = torch.cuda.Stream(device)
            return self._streams[device]

    # ---- asynchronous use ----
    def start(self, ids: torch.Tensor, device: torch.device) -> None:
        """Begin fetching rows for ``ids`` in the background (replaces an unused pending fetch; a
        no-op when the rows of these ids are already pending or held)."""
        device = torch.device(device)
        for held in (self._pending, self._current):
            if held is not None and held.device == device and _same_ids(held, ids, self._by_value):
                self.stats["ahead"] += held is self._pending  # asked for before this forward
                return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engram-prefetch")
        self._drain()
        key, version = ids.detach().clone(), ids._version  # taken now: ids may change after this call
        ready = None
        if key.is_cuda:  # the clone is queued on this thread's stream: the side stream waits for it
            ready = torch.cuda.Event()
            ready.record(torch.cuda.current_stream(key.device))

        def job() -> FetchedRows:
            if device.type == "cuda":
                torch.cuda.set_device(device)
            return self.fetch(ids, device, key, version, ready)

        self._pending = _Request(ids, version, key, device, self._executor.submit(job))

    def take(self, ids: torch.Tensor, device: torch.device) -> FetchedRows:
        """Rows for ``ids``: the pending prefetch when it matches (waiting for it only if needed),
        the rows of the previous forward when the ids are the same, else a synchronous fetch."""
        if self._pending is not None:
            fetched = self._pending.future.result()
            self._pending = None
            self._current = fetched
            if fetched.matches(ids, self._by_value) and fetched.staged.device == torch.device(device):
                self.stats["prefetched"] += 1
                fetched.wait()
                return fetched
        if (self._current is not None and self._current.matches(ids, self._by_value)
                and self._current.staged.device == torch.device(device)):
            self.stats["reused"] += 1
            self._current.wait()
            return self._current
        self.stats["synchronous"] += 1
        self._current = self.fetch(ids, device)
        self._current.wait()
        return self._current

    def wait(self) -> None:
        """Let a pending fetch finish (before the table's collectives run in this thread)."""
        self._drain()

    def _drain(self) -> None:
        """Finish a pending fetch (so no gather runs while the table changes)."""
        if self._pending is not None:
            self._pending.future.result()

    def refresh(self, updated_rows: torch.Tensor | None) -> None:
        """After a table update of ``updated_rows`` (sorted; None: any row may have changed):
        re-gather the changed rows of a pending prefetch, and drop the rows held from the last
        forward (all of them just changed)."""
        self._drain()
        self._current = None
        if self._pending is not None:
            fetched = self._pending.future.result()
            fetched.wait()
            rows = fetched.rows
            if updated_rows is None:
                updated_rows = rows
            updated = updated_rows.to(rows.device)
            pos = torch.searchsorted(updated, rows).clamp_max(max(len(updated) - 1, 0))
            hit = (updated[pos] == rows) if len(updated) else torch.zeros_like(rows, dtype=torch.bool)
            if not bool(hit.any()) and not self.table.collective:  # a collective read: every rank reads
                return
            where = hit.nonzero().squeeze(1)
            fresh = self.table.read(rows[where])
            fetched.staged.index_copy_(0, where.to(fetched.staged.device), fresh.to(fetched.staged.device))
            self.stats["refreshed_rows"] += len(where)

    def forget(self) -> None:
        """Drop held rows (e.g. after the table was reloaded from a checkpoint)."""
        self._drain()
        self._pending, self._current = None, None

    def close(self) -> None:
        self.forget()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def __getstate__(self):
        """A copy (deepcopy of the model) starts with no thread, streams or held rows."""
        self._drain()
        return {"table": self.table, "plan": self.plan, "stats": dict(self.stats)}

    def __setstate__(self, state):
        self.__init__(state["table"], state["plan"])
        self.stats.update(state["stats"])


@dataclass
class _Request:
    """A prefetch in flight: the ids it was asked for and its future."""

    source: torch.Tensor
    source_version: int
    key: torch.Tensor
    device: torch.device
    future: Future


def _same_ids(held, ids: torch.Tensor, by_value: bool = True) -> bool:
    """Whether ``ids`` are the ids ``held`` was fetched for: the same unchanged tensor, or (when
    ``by_value``) equal values."""
    if ids is held.source and ids._version == held.source_version:
        return True
    return by_value and ids.shape == held.key.shape and torch.equal(ids.to(held.key.device), held.key)
