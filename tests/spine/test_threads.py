"""Processes sharing the machine: each one's torch, OpenMP and kernel threads fit the cores together;
``run --threads``; ``bench`` warns on a busy machine; kernels pick their threads by work size."""
from __future__ import annotations

import json
import os

import pytest
import torch

from cogsim import native, threads
from cogsim.cli import main
from cogsim.htm import native_tm
from cogsim.snn import native as snn_native

ENV_KEYS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "COGSIM_NATIVE_THREADS", "OMP_WAIT_POLICY")


@pytest.fixture
def restore_threads(monkeypatch):
    """Whatever a test sets (torch threads, kernel limit, environment) is put back afterwards."""
    for key in (*ENV_KEYS, "COGSIM_HTM_THREADS"):
        monkeypatch.delenv(key, raising=False)
    old_torch, old_native = torch.get_num_threads(), native._max_threads
    yield monkeypatch
    torch.set_num_threads(old_torch)
    native.set_max_threads(old_native)


def test_the_cores_are_shared_among_processes():
    two = threads.plan_threads(2, cores=2)
    assert two.threads == 1
    assert two.env == {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "COGSIM_NATIVE_THREADS": "1",
                       "OMP_WAIT_POLICY": "PASSIVE"}
    assert threads.plan_threads(3, cores=16).threads == 5
    assert threads.plan_threads(4, cores=2).threads == 1  # never below one
    alone = threads.plan_threads(1, cores=8)
    assert alone.threads == 8 and "OMP_WAIT_POLICY" not in alone.env  # a lone process keeps spinning waits
    assert threads.plan_threads(1, threads=2, cores=8).env["OMP_WAIT_POLICY"] == "PASSIVE"  # leaves cores free
    with pytest.raises(ValueError, match="processes must be at least 1"):
        threads.plan_threads(0)
    with pytest.raises(ValueError, match="threads must be at least 1"):
        threads.plan_threads(1, threads=0)


def test_share_cores_sets_torch_kernels_and_the_childrens_environment(restore_threads):
    big = 1 << 40  # work enough for any number of threads
    with threads.sharing_cores(2) as plan:
        n = plan.threads
        assert n == max(1, native.usable_cpus() // 2)
        assert torch.get_num_threads() == n and native.max_threads() == n
        assert native_tm.default_threads() == n and native_tm.threads_for(64, big, 1) == n
        assert snn_native.threads_for(1, big) == n
        assert all(os.environ[k] == v for k, v in plan.env.items())
        assert threads.current() == {"torch": n, "native": n, "omp_wait_policy": "PASSIVE"}
    assert all(k not in os.environ for k in ENV_KEYS)  # the parent's environment is back
    threads.share_cores(1, 3)
    assert torch.get_num_threads() == 3 and native.max_threads() == 3 and os.environ["OMP_NUM_THREADS"] == "3"


def test_kernels_choose_threads_by_work_size(restore_threads):
    native.set_max_threads(4)
    assert native.kernel_threads(10, 100) == 1
    assert native.kernel_threads(250, 100) == 2
    assert native.kernel_threads(10_000, 100) == 4
    # the SNN bench's default problem (T=25, batch 64, 512 neurons) runs on one thread
    assert snn_native.threads_for(25, 64 * 512) == 1
    assert native_tm.threads_for(3, 1 << 30, 1) == 3  # never more threads than streams
    restore_threads.setenv("COGSIM_HTM_THREADS", "2")
    assert native_tm.threads_for(8, 1, 1 << 20) == 2  # the HTM switch is exact (tests, benchmarks)
    native.set_max_threads(None)
    restore_threads.setenv("COGSIM_NATIVE_THREADS", "3")
    assert native.max_threads() == 3
    restore_threads.delenv("COGSIM_NATIVE_THREADS")
    restore_threads.setenv("OMP_NUM_THREADS", "1")
    assert native.max_threads() == 1
    with pytest.raises(ValueError, match="at least 1"):
        native.set_max_threads(0)


def test_bench_warns_when_another_job_loads_the_machine(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(os, "getloadavg", lambda: (1.9, 1.2, 0.8))
    assert main(["bench", "snn", "--paths", "warp", "--csv", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("cogsim bench: warning: load average 1.90") and "unreliable" in err[0]
    monkeypatch.setattr(os, "getloadavg", lambda: (0.05, 0.1, 0.1))
    assert main(["bench", "snn", "--paths", "warp", "--csv", str(tmp_path / "x.csv")]) == 2
    assert "warning" not in capsys.readouterr().err


def test_run_threads_reach_torch_the_kernels_and_the_summary(restore_threads, tiny_arch, tiny_corpus, tmp_path,
                                                              capsys):
    out = tmp_path / "run"
    assert main(["run", str(tiny_arch), "--data", str(tiny_corpus), "--steps", "2", "--batch-size", "2",
                 "--seq-len", "16", "--out", str(out), "--quiet", "--no-viz", "--threads", "1"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["threads"] == {"torch": 1, "native": 1, "omp_wait_policy": threads.current()["omp_wait_policy"]}
    assert summary["native_kernels"].startswith("native kernels")
    text = capsys.readouterr().out
    assert "native kernels" in text and "torch 1, native kernels 1" in text
    assert main(["run", str(tiny_arch), "--threads", "0", "--out", str(tmp_path / "x")]) == 2
    assert "--threads must be at least 1" in capsys.readouterr().err
