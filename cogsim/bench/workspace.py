"""``cogsim bench workspace``: the workspace's forward+backward time against dense layers of similar
size timed in the same run (interleaved), so the cost reads as a ratio on a shared, noisy machine.
Rows go to experiments/bench/workspace.csv. ``--clock cpu --threads 1`` (process CPU time of one
thread) is the figure to trust on a machine shared with other jobs.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from cogsim.bench.common import add_csv_argument, append_csv
from cogsim.component import Context, Sizes
from cogsim.workspace.component import WorkspaceComponent, WorkspaceParams


def _timed(fns: dict, repeat: int, clock: str = "wall", warmup: int = 2) -> dict[str, float]:
    """Median seconds per call of each callable, measured round-robin so load hits all alike.
    ``clock``: "wall" (perf_counter) or "cpu" (this process's CPU time)."""
    now = time.perf_counter if clock == "wall" else time.process_time
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = now()
            fn()
            times[name].append(now() - t0)
    return {name: statistics.median(v) for name, v in times.items()}


def bench_workspace(B: int = 16, T: int = 128, D: int = 256, M: int = 4, K: int = 7, *,
                    top_k: int = 2, d_slot: int | None = None, salience: bool = True,
                    repeat: int = 9, seed: int = 0, threads: int | None = None, clock: str = "wall") -> dict:
    """Forward+backward ms of the workspace (M candidates, K slots) and of two dense references on
    the same [B, T, D] input: a linear layer with about as many parameters, and a transformer
    feed-forward sublayer (D → 4D → D, GELU). Returns the timings, ratios and parameter counts."""
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    params = WorkspaceParams(slots=K, top_k=top_k, **({"d_slot": d_slot} if d_slot else {}))
    ws = WorkspaceComponent(params, Sizes(d_model=D, n_heads=4, seq_len=T, vocab_size=1))
    n_ws = sum(p.numel() for p in ws.parameters())
    linear = nn.Linear(D, max(1, round(n_ws / D)), bias=False)
    ffn = nn.Sequential(nn.Linear(D, 4 * D), nn.GELU(), nn.Linear(4 * D, D))
    x = torch.randn(B, T, D, requires_grad=True)
    cands = [torch.randn(B, T, D, requires_grad=True) for _ in range(M)]
    inputs = {"x": x, "candidates": cands}
    if salience:
        inputs["salience"] = torch.rand(B, T)
    ctx = Context()

    def run_ws():
        ws(inputs, ctx)["out"].square().mean().backward()

    def run_linear():
        linear(x).square().mean().backward()

    def run_ffn():
        ffn(x).square().mean().backward()

    t = _timed({"workspace": run_ws, "linear": run_linear, "ffn": run_ffn}, repeat, clock)
    return {
        "B": B, "T": T, "D": D, "M": M, "K": K, "top_k": top_k, "d_slot": ws.d_slot,
        "threads": torch.get_num_threads(), "clock": clock,
        "workspace_ms": round(t["workspace"] * 1e3, 2), "linear_ms": round(t["linear"] * 1e3, 2),
        "ffn_ms": round(t["ffn"] * 1e3, 2),
        "ws_over_linear": round(t["workspace"] / t["linear"], 2),
        "ws_over_ffn": round(t["workspace"] / t["ffn"], 2),
        "workspace_params": n_ws, "linear_params": linear.weight.numel(),
        "ffn_params": sum(p.numel() for p in ffn.parameters()),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = (("B", 16), ("T", 128), ("D", 256), ("M", 4), ("K", 7), ("top-k", 2), ("repeat", 9))
    for name, default in defaults:
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--d-slot", type=int, nargs="*", default=[0], help="slot widths (0 = default)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = leave as is)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    add_csv_argument(parser, "workspace.csv")


def run(args: argparse.Namespace) -> int:
    rows = []
    for ds in args.d_slot:
        row = bench_workspace(args.B, args.T, args.D, args.M, args.K, top_k=args.top_k, d_slot=ds or None,
                              repeat=args.repeat, threads=args.threads or None, clock=args.clock)
        rows.append(row)
        print(f"d_slot {row['d_slot']:4d}: workspace {row['workspace_ms']:8.2f} ms | "
              f"linear ({row['linear_params']} params) {row['linear_ms']:7.2f} ms "
              f"×{row['ws_over_linear']} | "
              f"FFN D→4D→D {row['ffn_ms']:7.2f} ms  ×{row['ws_over_ffn']}  "
              f"[B={row['B']} T={row['T']} D={row['D']} M={row['M']} K={row['K']}, {row['workspace_params']} "
              f"params, {row['threads']} threads, {row['clock']} clock]")
    print("appended to", append_csv(args.csv, rows))
    return 0

