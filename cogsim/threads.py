"""Thread counts for cogsim processes that share one machine.

Several processes that each run as many threads as there are cores collapse together: OpenMP
threads spin while they wait, so each process's threads keep the others' off the cores (two
training runs on a 2-core machine each ran 9x slower than half speed). Whoever starts processes
(ablation workers, distributed ranks, benchmark subprocesses; ``cogsim run --threads``) calls
:func:`share_cores` in each so that their threads together fit the cores, and :func:`sharing_cores`
in the parent around starting them so that children inherit the environment.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field

import torch

from cogsim import native

#: 1-minute load average (runnable processes beyond this one) above which a benchmark warns.
BUSY_LOAD = 0.75


@dataclass(frozen=True)
class ThreadPlan:
    """Threads of one of ``processes`` processes on ``cores`` cores, and the environment its
    children get (OpenMP/MKL thread counts, a passive wait policy when processes share cores)."""

    processes: int
    cores: int
    threads: int
    env: dict[str, str] = field(default_factory=dict)


def plan_threads(processes: int = 1, threads: int | None = None, cores: int | None = None) -> ThreadPlan:
    """The share of one process among ``processes`` cogsim processes: ``threads`` if given, else
    ``cores // processes`` (at least 1). When more than one process runs, OpenMP waits passively
    (sleeps instead of spinning), so a waiting process leaves its core to the others."""
    if processes < 1:
        raise ValueError(f"processes must be at least 1, got {processes}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    cores = cores or native.usable_cpus()
    n = threads or max(1, cores // processes)
    env = {"OMP_NUM_THREADS": str(n), "MKL_NUM_THREADS": str(n), "COGSIM_NATIVE_THREADS": str(n)}
    if processes > 1 or n < cores:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    return ThreadPlan(processes, cores, n, env)


def share_cores(processes: int = 1, threads: int | None = None) -> ThreadPlan:
    """Make this process one of ``processes`` cogsim processes sharing the machine: torch intra-op
    threads, the native kernels' threads (HTM, SNN, Engram) and the environment of the children it
    starts (``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, ``COGSIM_NATIVE_THREADS``, ``OMP_WAIT_POLICY``)
    all follow :func:`plan_threads`. Call it first thing in each worker, rank or benchmark
    subprocess. OpenMP reads its wait policy when torch is loaded, so in this process the policy
    changes only through the environment this process was started with."""
    plan = plan_threads(processes, threads)
    torch.set_num_threads(plan.threads)
    native.set_max_threads(plan.threads)
    os.environ.update(plan.env)
    return plan


@contextlib.contextmanager
def sharing_cores(processes: int, threads: int | None = None):
    """:func:`share_cores` for a stretch (e.g. while worker processes are started and run), then
    this process's threads and environment as they were."""
    old_torch, old_native = torch.get_num_threads(), native._max_threads
    plan = plan_threads(processes, threads)
    old_env = {k: os.environ.get(k) for k in plan.env}
    try:
        yield share_cores(processes, threads)
    finally:
        torch.set_num_threads(old_torch)
        native.set_max_threads(old_native)
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def current() -> dict:
    """This process's thread settings (recorded in run summaries)."""
    return {"torch": torch.get_num_threads(), "native": native.max_threads(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default")}


def busy_warning(cores: int | None = None) -> str | None:
    """A one-line warning when the load average shows another job on the machine, else ``None``:
    a benchmark's figures are then worth little."""
    try:
        load = os.getloadavg()[0]
    except (OSError, AttributeError):
        return None
    if load <= BUSY_LOAD:
        return None
    cores = cores or native.usable_cpus()
    return (f"warning: load average {load:.2f} on {cores} cores shows other jobs running; "
            "these timings are unreliable (rerun on a quiet machine)")
