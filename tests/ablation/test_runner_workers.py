"""A suite killed outright (SIGKILL: no cleanup runs) takes its training workers with it: every
process it started (workers, and the resource tracker behind their queues) is gone within seconds."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

ARCH = """\
name: tinylong
model: {d_model: 16, n_heads: 2, seq_len: 24, vocab_size: 300, window: 2}
train: {steps: 100000, batch_size: 2, lr: 0.003, warmup: 1, eval_every: 100000, eval_batches: 1, checkpoint_every: 100000, log_every: 1}
data: {task: count, span: 8, queries: 2}
nodes:
  embed: {type: embedding}
  block1: {type: block}
  head: {type: lm_head}
stack: [embed, block1, head]
"""
SUITE = """\
import sys
from pathlib import Path
from cogsim.ablation.runner import run_suite
from cogsim.ablation.variants import Variant
from cogsim.graph.spec import read_spec
spec = read_spec(Path(sys.argv[1]), [])
run_suite([Variant("a", "", spec), Variant("b", "", spec)], [0], Path(sys.argv[2]), device="cpu", jobs=2)
"""


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pids: list[int]) -> list[int]:
    """Those of ``pids`` still running (not exited, not zombies)."""
    out = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.append(pid)
    return out


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
def test_workers_end_with_a_suite_killed_outright(tmp_path):
    arch, out = tmp_path / "arch.yaml", tmp_path / "out"
    arch.write_text(ARCH)
    suite = subprocess.Popen([sys.executable, "-c", SUITE, str(arch), str(out)])
    try:
        deadline = time.monotonic() + 120
        logs = [out / f"{name}-seed0" / "metrics.jsonl" for name in "ab"]
        while not all(p.exists() and p.stat().st_size for p in logs):  # both workers are training
            assert suite.poll() is None and time.monotonic() < deadline, "the suite did not start its runs"
            time.sleep(0.2)
        started = _children(suite.pid)
        assert len(started) >= 2
    finally:
        suite.kill()
        suite.wait()
    deadline = time.monotonic() + 15
    while _alive(started) and time.monotonic() < deadline:  # the workers notice within a second
        time.sleep(0.2)
    assert not _alive(started), f"processes of the killed suite still run: {_alive(started)}"
