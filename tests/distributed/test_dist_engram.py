"""Engram tables shared by 2 ranks (torchrun, gloo): a sharded table gathers exactly the rows of an
unsharded one and takes the same gradients and updates; a host table shared in /dev/shm takes
concurrent disjoint updates exactly as serial ones (checks in engram_ranks.py)."""
from __future__ import annotations

from pathlib import Path

from launch import torchrun

WORKER = str(Path(__file__).with_name("engram_ranks.py"))


def run_checks(*names: str) -> str:
    proc = torchrun(WORKER, *names)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_sharded_lookup_and_gradients_equal_an_unsharded_table():
    out = run_checks("sharded")
    assert "rank 0: sharded ok" in out and "rank 1: sharded ok" in out


def test_shared_host_table_concurrent_disjoint_updates_equal_serial_updates():
    out = run_checks("shared_host")
    assert "rank 0: shared_host ok" in out and "rank 1: shared_host ok" in out
