"""A rank killed mid-run: the other stops with a one-line message within a timeout (no hang), and
the run resumes from its last checkpoint."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from cogsim.graph.spec import read_spec
from cogsim.train.trainer import Trainer
from launch import RANK_TIMEOUT, TIMEOUT, start, stop
from test_dist_training import ARCH

STOPPED_WITHIN = 60  # seconds from the kill to the end of the launch
assert STOPPED_WITHIN < RANK_TIMEOUT


def rank_process(marker: str, rank: int) -> int | None:
    """The pid of the cogsim process for ``rank`` whose command line holds ``marker``."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker.encode() in cmd and b"cogsim" in cmd and f"RANK={rank}".encode() in environ \
                and b"torch.distributed.run" not in cmd:
            return int(proc.name)
    return None


def test_killed_rank_stops_the_others_and_the_run_resumes(write_arch, tiny_corpus, tmp_path):
    arch = write_arch(ARCH)
    out = tmp_path / "killed"
    launcher = start("-m", "cogsim", "run", str(arch), "--data", str(tiny_corpus), "--out", str(out), "--quiet",
                     "--no-viz", "--set", "train.steps=100000", "--set", "train.checkpoint_every=2",
                     "--set", "train.eval_every=100000")
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (out / "checkpoint" / "state.json").exists():
            assert launcher.poll() is None, launcher.communicate()[1][-3000:]
            assert time.monotonic() < deadline, f"no checkpoint within {TIMEOUT} s"
            time.sleep(0.2)
        victim = rank_process(str(out), 1)
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        # the survivor's next collective fails at once (the connection closes) and torchrun stops
        # it: seconds. The limit is far below the process-group timeout, which must not be needed.
        _, err = launcher.communicate(timeout=STOPPED_WITHIN)  # raises TimeoutExpired on a hang
    finally:
        stop(launcher)
        launcher.communicate()
    assert launcher.returncode != 0
    lines = [l for l in err.splitlines() if l.startswith("cogsim run: error: rank 0 of 2")]
    assert lines and "--resume" in lines[0], err[-3000:]
    assert "stopped by the launcher" in lines[0] or "lost contact with another rank" in lines[0]

    step = json.loads((out / "checkpoint" / "state.json").read_text())["step"]
    assert step >= 2
    spec = read_spec(arch, [f"data.path={tiny_corpus}", f"train.steps={step + 2}", "train.checkpoint_every=2",
                            "train.eval_every=100000"])
    summary = Trainer(spec, out, device="cpu", resume=True).train()
    assert summary["steps"] == step + 2
    assert json.loads((out / "checkpoint" / "state.json").read_text())["step"] == step + 2
