"""A rank killed mid-run: the other stops with a one-line message within a timeout (no hang), and
the run resumes from its last checkpoint."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from cogsim.graph.spec import read_spec
from cogsim.train.trainer import Trainer
from launch import ROOT, env, torchrun_command
from test_dist_training import ARCH


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
    cmd = torchrun_command("-m", "cogsim", "run", str(arch), "--data", str(tiny_corpus), "--out", str(out), "--quiet",
                           "--no-viz", "--set", "train.steps=100000", "--set", "train.checkpoint_every=2",
                           "--set", "train.eval_every=100000")
    launcher = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(), cwd=ROOT)
    try:
        deadline = time.monotonic() + 180
        while not (out / "checkpoint" / "state.json").exists():
            assert launcher.poll() is None, launcher.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "no checkpoint within 180 s"
            time.sleep(0.2)
        victim = rank_process(str(out), 1)
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        _, err = launcher.communicate(timeout=120)  # raises TimeoutExpired if anything hangs
        assert time.monotonic() - killed < 120
    finally:
        if launcher.poll() is None:
            launcher.kill()
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
