"""Start ranks with torchrun for the data-parallel tests (imported by the test files next to it).

Every launch runs 2 CPU processes on gloo with one thread each and sleeping idle threads, under a
wall-clock timeout so that a hang fails the test instead of holding CI. The limits are generous
(a tiny run takes ~10 s on a quiet 2-core machine, ~30 s with eight busy processes beside it): they
catch a hang, not a slow machine. A launch that times out is stopped with its ranks, so a hung
rank does not outlive its test."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 300  # seconds for one launch
RANK_TIMEOUT = 120  # COGSIM_DIST_TIMEOUT: a collective waiting longer than this fails (a hung rank)


def env(**extra: str) -> dict[str, str]:
    out = dict(os.environ)
    out.update(OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE", COGSIM_DIST_TIMEOUT=str(RANK_TIMEOUT),
               PYTHONPATH=os.pathsep.join([str(ROOT), out.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    out.update(extra)
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        out.pop(name, None)
    return out


def torchrun_command(*args: str, ranks: int = 2) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}", *args]


def start(*args: str, ranks: int = 2, extra_env: dict[str, str] | None = None) -> subprocess.Popen:
    """``torchrun --standalone --nproc_per_node=ranks ARGS``, running (stdout and stderr piped)."""
    return subprocess.Popen(torchrun_command(*args, ranks=ranks), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env(**(extra_env or {})), cwd=ROOT)


def _stat(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the command name (field 4, the parent, comes first)."""
    return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()


def ranks_of(launcher: subprocess.Popen) -> list[tuple[int, str]]:
    """(pid, start time) of the launcher's children: its ranks (torchrun starts each in a session of
    its own, so they are found by parent, not by process group)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                fields = _stat(int(proc.name))
                if fields[1] == str(launcher.pid):
                    found.append((int(proc.name), fields[19]))
    return found


def stop(launcher: subprocess.Popen, grace: float = 30) -> None:
    """Stop a launch that is still running: SIGTERM to torchrun (it stops its ranks), then after
    ``grace`` seconds SIGKILL to the ranks left (the very processes: pid and start time) and to
    torchrun."""
    if launcher.poll() is not None:
        return
    ranks = ranks_of(launcher)
    launcher.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while launcher.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid, started in ranks:
        with contextlib.suppress(OSError, IndexError):
            if _stat(pid)[19] == started:
                os.kill(pid, signal.SIGKILL)
    if launcher.poll() is None:
        launcher.kill()


def torchrun(*args: str, ranks: int = 2, timeout: float = TIMEOUT,
             extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node=ranks ARGS`` (e.g. ``-m cogsim run …``) to its end;
    an AssertionError with torchrun's last output if it runs past ``timeout`` seconds."""
    launcher = start(*args, ranks=ranks, extra_env=extra_env)
    try:
        out, err = launcher.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(launcher)
        out, err = launcher.communicate()
        raise AssertionError(f"torchrun {' '.join(args)}: no end within {timeout} s (a hung rank?)\n"
                             f"{err[-3000:]}") from None
    return subprocess.CompletedProcess(launcher.args, launcher.returncode, out, err)
