"""Start ranks with torchrun for the data-parallel tests (imported by the test files next to it).

Every launch runs 2 CPU processes on gloo with one thread each and sleeping idle threads, under a
wall-clock timeout so that a hang fails the test instead of holding CI."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 240  # seconds for one launch (a tiny run takes ~10 s on a quiet 2-core machine)


def env() -> dict[str, str]:
    out = dict(os.environ)
    out.update(OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE", COGSIM_DIST_TIMEOUT="60",
               PYTHONPATH=os.pathsep.join([str(ROOT), out.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        out.pop(name, None)
    return out


def torchrun_command(*args: str, ranks: int = 2) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}", *args]


def torchrun(*args: str, ranks: int = 2, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node=ranks ARGS`` (e.g. ``-m cogsim run …``)."""
    return subprocess.run(torchrun_command(*args, ranks=ranks), capture_output=True, text=True, timeout=timeout,
                          env=env(), cwd=ROOT)
