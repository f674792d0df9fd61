"""``cogsim bench snn``: forward+backward of a LIF layer over T steps, every cogsim path against
``snntorch.Leaky`` stepped in a Python loop, timed round-robin in the same run (ratios survive a
noisy machine). Each path's spikes are checked equal to snntorch's before timing.

Paths: native (C kernels, the CPU default of ``fused=True``), torch (whole-sequence autograd function
in torch ops, the default off-CPU), compile (``torch.compile`` of the per-step loop; its compile
time is reported, not timed), parallel (exact parallel form, reset "none" only; compared against
snntorch with reset "none"), loop (cogsim's per-step graph, ``fused=False``).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from cogsim.bench.common import add_csv_argument, append_csv, load_average, parse_choices, sync
from cogsim.snn import native
from cogsim.snn.lif import lif_sequence
from cogsim.threads import share_cores

PATHS = ("native", "torch", "compile", "parallel", "loop")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", "-T", type=int, default=25, help="time steps T (default 25)")
    parser.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    parser.add_argument("--neurons", type=int, default=512, help="neurons per sample (default 512)")
    parser.add_argument("--beta", type=float, default=0.9)
    parser.add_argument("--paths", default=",".join(PATHS),
                        help=f"comma-separated paths to time (default: {','.join(PATHS)})")
    parser.add_argument("--repeat", type=int, default=15, help="timed rounds (median is reported)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch and kernel threads (default: torch's; kernel threads by work size)")
    parser.add_argument("--device", default="cpu")
    add_csv_argument(parser, "snn.csv")


def _snntorch_step_loop(x, beta, reset):
    import snntorch

    lif = snntorch.Leaky(beta=beta, reset_mechanism=reset).to(x.device)

    def run():
        mem = torch.zeros_like(x[0])
        spikes, mems = [], []
        for t in range(x.shape[0]):
            spk, mem = lif(x[t], mem)
            spikes.append(spk)
            mems.append(mem)
        return torch.stack(spikes), torch.stack(mems)
    return run


def _fwd_bwd(forward, x, grads):
    def run():
        spikes, mem = forward()
        torch.autograd.backward([spikes, mem], grads)
        x.grad = None
    return run


def run(args: argparse.Namespace) -> int:
    if args.threads:
        share_cores(1, args.threads)
    paths = parse_choices(args.paths, PATHS, "--paths", "path")
    dev = torch.device(args.device)
    torch.manual_seed(0)
    T, B, N = args.steps, args.batch, args.neurons
    x = (torch.randn(T, B, N, device=dev) * 0.5 + 0.3).requires_grad_(True)
    grads = [torch.randn(T, B, N, device=dev), torch.randn(T, B, N, device=dev)]
    print(f"snn bench: T={T} batch={B} neurons={N} beta={args.beta} device={dev} "
          f"threads={torch.get_num_threads()} (kernel {native.threads_for(T, B * N)}); {native.status()}")

    fns, resets, notes = {}, {}, {}
    for reset in ("subtract", "none") if "parallel" in paths else ("subtract",):
        fns[f"snntorch/{reset}"] = _fwd_bwd(_snntorch_step_loop(x, args.beta, reset), x, grads)
    for path in paths:
        reset = "none" if path == "parallel" else "subtract"
        if path == "native":
            notes[path] = (f"kernel threads {native.threads_for(T, B * N)}" if native.supports(x)
                           else "native kernels unavailable here (runs the torch path)")

        def forward(path=path, reset=reset):
            return lif_sequence(x, beta=args.beta, reset=reset, fused=path)
        with torch.no_grad():
            ref = _snntorch_step_loop(x, args.beta, reset)()[0]
            t0 = time.perf_counter()
            got = forward()[0]
        if path == "compile":
            _fwd_bwd(forward, x, grads)()  # compile the backward too, outside the timing
            notes[path] = f"compile time {time.perf_counter() - t0:.1f} s (not timed)"
        if not torch.equal(got, ref):
            print(f"  {path}: spikes differ from snntorch ({(got != ref).float().mean().item():.2e} of them)")
        fns[path], resets[path] = _fwd_bwd(forward, x, grads), reset

    times: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():  # warm-up
        fn()
    for _ in range(args.repeat):
        for name, fn in fns.items():
            sync(dev)
            t0 = time.perf_counter()
            fn()
            sync(dev)
            times[name].append(time.perf_counter() - t0)
    ms = {k: statistics.median(v) * 1e3 for k, v in times.items()}

    rows, load = [], load_average()
    for reset in ("subtract", "none"):
        if f"snntorch/{reset}" in ms:
            print(f"  {'snntorch.Leaky loop':24s} reset={reset:8s} {ms[f'snntorch/{reset}']:8.2f} ms   1.00x")
    for path in paths:
        base = ms[f"snntorch/{resets[path]}"]
        ratio = base / ms[path]
        print(f"  {'cogsim ' + path:24s} reset={resets[path]:8s} {ms[path]:8.2f} ms  {ratio:5.2f}x"
              + (f"   ({notes[path]})" if path in notes else ""))
        rows.append({"target": "snn", "path": path, "reset": resets[path], "T": T, "batch": B, "neurons": N,
                     "device": str(dev), "threads": torch.get_num_threads(), "ms": round(ms[path], 3),
                     "snntorch_ms": round(base, 3), "speedup": round(ratio, 2),
                     "note": "; ".join(filter(None, [notes.get(path, ""), load]))})
    out = append_csv(args.csv, rows)
    print(f"appended {len(rows)} rows to {out}")
    return 0
