"""Data-parallel training over torch.distributed (``torchrun --nproc_per_node=N -m cogsim run …``).

One process per rank; torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``LOCAL_WORLD_SIZE``, rendezvous) says who is who. ``train.batch_size`` is the global batch: every
rank draws the same global batch from the seeded sampler and keeps its own block of
batch_size / N rows, so N ranks see exactly the batches of one process. Dense gradients are
averaged by DistributedDataParallel (gloo on a CPU, NCCL on CUDA); components with their own
optimizers (Engram tables) exchange their row gradients themselves. Rank 0 writes the run folder,
except the shards of row-sharded tables, which each rank writes (:mod:`cogsim.train.checkpoint`).

A rank that dies makes every collective of the others fail (gloo: the connection closes; a hung
rank: the process-group timeout, ``COGSIM_DIST_TIMEOUT`` seconds, default 300): :func:`guard` turns
that, and torchrun's SIGTERM, into a one-line error that points at ``--resume``.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import os
import re
import signal
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.distributed as dist

from cogsim.errors import CogsimError


class PeerLost(CogsimError):
    """Another rank stopped (killed, crashed or hung); this one stops too."""


@dataclass(frozen=True)
class World:
    """This process's place among the ranks (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.size > 1

    def rows(self, batch: int) -> slice:
        """This rank's block of a global batch of ``batch`` rows (the last block may be short)."""
        per = -(-batch // self.size)
        return slice(min(batch, self.rank * per), min(batch, (self.rank + 1) * per))

    # ---- collectives (no-ops for one process) ----
    def barrier(self, patient: bool = False) -> None:
        """Wait for every rank. ``patient``: while rank 0 does one-off work as long as it takes
        (training the tokenizer on a large corpus), on a group without the hang timeout."""
        if self.parallel:
            dist.barrier(group=_patient if patient else None)

    def gather_object(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` on rank 0 (a list by rank), None elsewhere."""
        if not self.parallel:
            return [obj]
        out = [None] * self.size if self.main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def all_gather_object(self, obj: Any) -> list[Any]:
        if not self.parallel:
            return [obj]
        out: list[Any] = [None] * self.size
        dist.all_gather_object(out, obj)
        return out

    def all_sum(self, values: torch.Tensor) -> torch.Tensor:
        """Element-wise sum over ranks (a new tensor on the same device)."""
        if not self.parallel:
            return values.detach().clone()
        where = values.device
        values = values.detach().to("cuda" if dist.get_backend() == "nccl" else where, copy=True)
        dist.all_reduce(values)
        return values.to(where)


SINGLE = World()
PATIENT_SECONDS = 7 * 24 * 3600  # the patient group's timeout: no limit in practice (a dead rank
# still fails it at once: its connections close, and torchrun stops the others)
_patient: Any = None  # that group (gloo), made by join()


def timeout_seconds() -> float:
    return float(os.environ.get("COGSIM_DIST_TIMEOUT", "300"))


def main_rank() -> bool:
    """Whether this process is rank 0 (or the only process), from torchrun's environment."""
    return os.environ.get("RANK", "0") == "0"


def launched() -> bool:
    """Whether this process is one of several ranks started by torchrun."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def join(device: torch.device) -> tuple[World, torch.device]:
    """Join the ranks started by torchrun (once per process): (world, this rank's device).
    One process (no torchrun, or ``--nproc_per_node=1``): (``SINGLE``, ``device``)."""
    if not launched():
        return SINGLE, device
    env = os.environ
    size, rank = int(env["WORLD_SIZE"]), int(env["RANK"])
    local_rank = int(env.get("LOCAL_RANK", rank))
    local_size = int(env.get("LOCAL_WORLD_SIZE", size))
    device = rank_device(device, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend_for(device), timeout=_dt.timedelta(seconds=timeout_seconds()))
    elif dist.get_world_size() != size:
        raise CogsimError(f"torch.distributed already runs {dist.get_world_size()} ranks, WORLD_SIZE says {size}")
    global _patient
    _patient = dist.new_group(backend="gloo", timeout=_dt.timedelta(seconds=PATIENT_SECONDS))
    fit_threads(local_size)
    _stop_on_sigterm(rank, size)
    return World(rank, size, local_rank, local_size), device


def rank_device(device: torch.device, local_rank: int) -> torch.device:
    """The device of local rank ``local_rank``: GPU number ``local_rank`` when training on CUDA."""
    return torch.device("cuda", local_rank) if device.type == "cuda" else device


def backend_for(device: torch.device) -> str:
    """NCCL between GPUs, gloo between CPU processes."""
    return "nccl" if device.type == "cuda" else "gloo"


def fit_threads(local_ranks: int) -> int:
    """Threads per rank so that the ranks of one node together fit its cores (torch intra-op and
    the native kernels' threads, :func:`cogsim.threads.share_cores`); never more than this process
    already runs (torchrun sets ``OMP_NUM_THREADS=1`` unless it is set). OpenMP reads its wait
    policy when torch loads: launch with ``OMP_WAIT_POLICY=PASSIVE`` when ranks share cores."""
    from cogsim import native
    from cogsim.threads import share_cores

    share = max(1, native.usable_cpus() // max(1, local_ranks))
    return share_cores(local_ranks, min(share, torch.get_num_threads())).threads


_reported = False  # a PeerLost was raised already: a later SIGTERM just ends the process


def _stop_on_sigterm(rank: int, size: int) -> None:
    """torchrun sends SIGTERM to the surviving ranks when one fails: say so and stop cleanly."""
    def handler(signum, frame):
        if _reported:
            os._exit(2)
        raise PeerLost(f"rank {rank} of {size}: stopped by the launcher (another rank failed); the last "
                       "checkpoint is kept, continue with --resume")

    with contextlib.suppress(ValueError):  # not the main thread: keep the default
        signal.signal(signal.SIGTERM, handler)


def _lost_peer(e: BaseException) -> bool:
    if isinstance(e, dist.DistError):
        return True
    text = str(e)
    return isinstance(e, RuntimeError) and any(
        s in text for s in ("Connection closed", "Connection reset", "Broken pipe", "gloo", "NCCL",
                            "Timed out", "timed out", "ProcessGroup"))


@contextlib.contextmanager
def guard(world: World) -> Iterator[None]:
    """Turn a failed collective (a rank died or hung) into a one-line :class:`PeerLost`."""
    global _reported
    try:
        yield
    except PeerLost:
        _reported = True
        raise
    except Exception as e:  # noqa: BLE001 - only collective failures are translated
        if not world.parallel or not _lost_peer(e):
            raise
        _reported = True
        raise PeerLost(f"rank {world.rank} of {world.size}: lost contact with another rank ({_reason(e)}); "
                       "stopping. The last checkpoint is kept: continue with --resume") from None


def _reason(e: BaseException) -> str:
    """The gist of a collective's error: its first sentence without the source location."""
    text = (str(e).strip().splitlines() or [type(e).__name__])[0]
    text = re.sub(r"^\[[^\]]*\]\s*", "", text)
    return text.split(". ")[0][:120]


def check_batch(batch_size: int, world: World) -> None:
    if batch_size % world.size:
        raise CogsimError(f"train.batch_size {batch_size} is not divisible by the {world.size} ranks; "
                          f"use a multiple of {world.size}")


def wrap(model: torch.nn.Module, world: World, device: torch.device) -> torch.nn.Module:
    """The module the training forward runs through: DDP over ``model`` for several ranks.
    Buffers are not broadcast (each rank keeps the HTM streams of its own rows); the graph is
    static (a node whose parameters get no gradient stays so), which DDP handles without a search."""
    if not world.parallel:
        return model
    from torch.nn.parallel import DistributedDataParallel

    import inspect

    ids = [device.index] if device.type == "cuda" else None
    no_sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
               else {"broadcast_buffers": False})
    return DistributedDataParallel(model, device_ids=ids, static_graph=True, **no_sync)


def place_rows(model, world: World, batch_size: int) -> None:
    """Tell components which rows of each global batch this rank reads."""
    rows = world.rows(batch_size)
    for _, comp in model.components():
        comp.set_batch_rows(rows.start, rows.stop - rows.start, batch_size)


@torch.no_grad()
def split_totals(model, inputs: torch.Tensor, targets: torch.Tensor, batch_size: int, device: torch.device,
                 world: World, score: Callable[[torch.Tensor, torch.Tensor], Sequence[float]]) -> list[float]:
    """Validation totals (``score(x, y)`` summed over batches), each rank scoring its block of every
    batch of ``batch_size`` rows and the sums added over ranks, so the result equals one process's.
    A rank whose block of the last (short) batch is empty runs a forward on one row that is not
    counted, so every rank makes the same collective calls."""
    was_training = model.training
    model.eval()
    totals: torch.Tensor | None = None
    try:
        block = world.rows(batch_size)  # a short last batch keeps the blocks (HTM: row g → stream g)
        for i in range(0, len(inputs), batch_size):
            n = min(batch_size, len(inputs) - i)
            part = slice(min(n, block.start), min(n, block.stop))
            x, y = inputs[i + part.start: i + part.stop], targets[i + part.start: i + part.stop]
            counted = len(x) > 0
            if not counted:
                x, y = inputs[i: i + 1], targets[i: i + 1]
            got = torch.tensor(score(x.to(device), y.to(device)), dtype=torch.float64)
            totals = (torch.zeros_like(got) if totals is None else totals) + (got if counted else 0)
    finally:
        model.train(was_training)
    return world.all_sum(totals).tolist()


def evaluate(model, inputs: torch.Tensor, targets: torch.Tensor, token_bytes: np.ndarray, batch_size: int,
             device: torch.device, world: World, autocast: bool = False) -> dict[str, float]:
    """Validation loss and bits per byte over all ranks (:func:`split_totals`)."""
    from cogsim.evaluate.metrics import batch_totals, bits_per_byte

    nats, tokens, nbytes = split_totals(model, inputs, targets, batch_size, device, world,
                                        lambda x, y: batch_totals(model, x, y, token_bytes, autocast))
    return {"val_loss": nats / tokens, "val_bpb": bits_per_byte(nats, int(nbytes))}


def evaluate_answers(model, inputs: torch.Tensor, targets: torch.Tensor, batch_size: int, device: torch.device,
                     world: World, autocast: bool = False) -> dict[str, float]:
    """Synthetic-task validation (answer loss and accuracy) over all ranks (:func:`split_totals`)."""
    from cogsim.evaluate.metrics import answer_metrics, answer_totals

    nats, correct, counted = split_totals(model, inputs, targets, batch_size, device, world,
                                          lambda x, y: answer_totals(model, x, y, autocast))
    return answer_metrics(nats, int(correct), int(counted))


def rank_rows(world: World, batch_size: int) -> list[range]:
    """The rows of a global batch each rank reads, by rank."""
    blocks = [World(r, world.size).rows(batch_size) for r in range(world.size)]
    return [range(b.start, b.stop) for b in blocks]


def gather_states(model, world: World, batch_size: int) -> dict[str, torch.Tensor]:
    """The model's state dict with per-rank state combined (HTM streams from the rank that reads
    them): on rank 0; the local state dict elsewhere (rank 0 alone writes it)."""
    state = model.state_dict()
    if not world.parallel:
        return state
    for name, comp in model.components():
        if not comp.per_rank_state():
            continue
        prefix = f"nodes.{name}."
        mine = {k[len(prefix):]: v.detach().cpu() for k, v in state.items() if k.startswith(prefix)}
        states = world.gather_object(mine)
        if world.main:
            merged = comp.merge_rank_states(states, rank_rows(world, batch_size))
            state.update({prefix + k: v for k, v in merged.items()})
    return state


def leave(world: World) -> None:
    """This rank's last collective is done: tear the process groups down (every table's too) now,
    while the interpreter is whole. Left to interpreter exit, gloo's threads can be destroyed while
    still joinable, and the process aborts ("terminate called without an active exception") after
    a successful run. Local: no rank waits for another."""
    if world.parallel and dist.is_initialized():
        dist.destroy_process_group()


def collect_on_main(model, world: World, batch_size: int) -> None:
    """After training: rank 0's model takes every rank's per-rank state and the rows of sharded
    tables, so it can run probes and figures alone. Collective."""
    if not world.parallel:
        return
    for name, comp in model.components():
        if comp.per_rank_state():
            states = world.gather_object({k: v.detach().cpu() for k, v in comp.state_dict().items()})
            if world.main:
                comp.load_state_dict(comp.merge_rank_states(states, rank_rows(world, batch_size)))
        comp.gather_rows_to_main()
