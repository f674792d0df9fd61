"""``cogsim bench dist``: data-parallel training on this machine, 2 ranks against 1 process.

Every side runs under torchrun, alternating, in the same invocation: 1 process with all the cores'
threads, 1 process with one thread, and 2 ranks (gloo) with the cores split between them; OpenMP
waits passively in all of them (on a busy machine a spinning wait costs a multi-threaded process
several times its step time).

- step: one training step (forward, backward, DDP all-reduce, AdamW, Engram row updates, the next
  batch's rows prefetched meanwhile) of an architecture at the same global batch; the ratio is
  step time / the 1-process step time;
- all-to-all: the time inside the sharded table's exchanges (lookups, in the prefetch thread and so
  partly hidden, and row gradients to their owners) as a share of the 2-rank step;
- lookup: rows per second gathered from a table sharded over the 2 ranks against the same rows
  gathered from a local table in the same processes.

The machine's load average is recorded before and after (figures on a busy machine mean little).
Rows go to ``experiments/bench/dist.csv``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from cogsim.bench.common import add_csv_argument, append_csv


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", default="architectures/engram.yaml", help="architecture (default: engram.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a field (the Engram nodes get placement: sharded)")
    parser.add_argument("--batch", type=int, default=8, help="global batch (default 8)")
    parser.add_argument("--steps", type=int, default=12, help="timed steps per launch (default 12)")
    parser.add_argument("--rounds", type=int, default=2, help="launches of each side, alternating (default 2)")
    parser.add_argument("--lookup-rows", type=int, default=1 << 20, help="rows of the lookup table (default 2^20)")
    parser.add_argument("--lookup-dim", type=int, default=64, help="row width of the lookup table (default 64)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds allowed per launch (default 300)")
    add_csv_argument(parser, "dist.csv")


def _load() -> float:
    return os.getloadavg()[0]


#: the sides compared: (name, ranks, threads per rank; None: the cores split between the ranks)
SIDES = (("1 process", 1, None), ("1 process 1 thread", 1, 1), ("2 ranks", 2, None))


def _launch(args, ranks: int, threads: int | None, out: Path) -> dict:
    from cogsim.threads import plan_threads

    env = {**os.environ, **plan_threads(ranks, threads).env, "OMP_WAIT_POLICY": "PASSIVE"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}",
           "-m", "cogsim.bench.dist", "--worker", str(out), args.arch, str(args.batch), str(args.steps),
           str(args.lookup_rows), str(args.lookup_dim), *args.overrides]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout)
    if proc.returncode != 0:
        from cogsim.errors import CogsimError

        raise CogsimError(f"bench dist: the {ranks}-rank launch failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.read_text())


def run(args: argparse.Namespace) -> int:
    load_before = _load()
    print(f"bench dist: {args.arch}, global batch {args.batch}, {args.steps} steps x {args.rounds} rounds; "
          f"load {load_before:.2f} before")
    results: dict[str, list[dict]] = {name: [] for name, _, _ in SIDES}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.rounds):
            for i, (name, ranks, threads) in enumerate(SIDES):
                results[name].append(_launch(args, ranks, threads, Path(tmp) / f"{i}-{k}.json"))
    load_after = _load()
    step = {name: statistics.median(r["step_s"] for r in got) for name, got in results.items()}
    one = step["1 process"]
    share = statistics.median(r["exchange_s"] / max(r["step_s"], 1e-12) for r in results["2 ranks"])
    sharded = statistics.median(r["sharded_rows_per_s"] for r in results["2 ranks"])
    local = statistics.median(r["local_rows_per_s"] for r in results["2 ranks"])
    base = {"arch": args.arch, "batch": args.batch, "steps": args.steps, "rounds": args.rounds,
            "load_before": round(load_before, 2), "load_after": round(load_after, 2),
            "tokens_per_step": results["1 process"][0]["tokens_per_step"]}
    rows = [{**base, "what": "step", "side": name, "ranks": ranks, "threads": results[name][0]["threads"],
             "ms": round(step[name] * 1e3, 2), "ratio": round(step[name] / one, 3),
             **({"all_to_all_share": round(share, 4)} if ranks > 1 else {})} for name, ranks, _ in SIDES]
    rows += [
        {**base, "what": "lookup", "ranks": 2, "table": "sharded", "rows": args.lookup_rows,
         "dim": args.lookup_dim, "rows_per_s": round(sharded), "ratio": round(sharded / local, 3)},
        {**base, "what": "lookup", "ranks": 2, "table": "local", "rows": args.lookup_rows,
         "dim": args.lookup_dim, "rows_per_s": round(local), "ratio": 1.0},
    ]
    print(f"step ({base['tokens_per_step']} tokens): " + ", ".join(
        f"{name} {step[name] * 1e3:.1f} ms ({step[name] / one:.2f}x)" for name, _, _ in SIDES))
    print(f"all-to-all: {share:.1%} of the 2-rank step")
    print(f"lookup: sharded {sharded:,.0f} rows/s vs local {local:,.0f} rows/s per rank ({sharded / local:.2f}x)")
    print(f"load {load_before:.2f} before, {load_after:.2f} after")
    print(f"rows appended to {append_csv(args.csv, rows)}")
    return 0


# ---- the worker (one per rank, started by torchrun) ----------------------------------------------
def _worker(out: str, arch: str, batch: int, steps: int, lookup_rows: int, lookup_dim: int, overrides: list[str]) -> None:
    import torch.nn.functional as F

    from cogsim.engram.sharded import ShardedTable
    from cogsim.engram.tables import EngramTable
    from cogsim.graph.build import build_plan
    from cogsim.graph.spec import read_spec
    from cogsim.model import CognitiveModel
    from cogsim.train import distributed
    from cogsim.train.trainer import make_optimizer

    world, dev = distributed.join(torch.device("cpu"))
    spec = read_spec(arch, overrides)
    sharded = [f"nodes.{n}.placement=sharded" for n, node in spec.nodes.items() if node.type == "engram"]
    spec = read_spec(arch, [*overrides, *sharded, f"train.batch_size={batch}"])
    torch.manual_seed(0)
    model = CognitiveModel(build_plan(spec, vocab_size=spec.model.vocab_size))
    distributed.place_rows(model, world, batch)
    net = distributed.wrap(model, world, dev)
    opt = make_optimizer(model, spec.train)
    gen = torch.Generator().manual_seed(1)
    rows = world.rows(batch)
    tables = [c.table for _, c in model.components() if isinstance(getattr(c, "table", None), ShardedTable)]

    seqs = [torch.randint(0, spec.model.vocab_size, (batch, spec.model.seq_len + 1), generator=gen)[rows]
            for _ in range(steps + 4)]
    xs, ys = [q[:, :-1] for q in seqs], [q[:, 1:].flatten() for q in seqs]

    def step(i: int) -> None:  # as the trainer: the next batch's rows are fetched during this step
        loss = F.cross_entropy(net(xs[i]).flatten(0, 1), ys[i])
        model.prefetch(xs[i + 1])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        for _, comp in model.components():
            comp.sparse_step(1e-3)

    for i in range(3):
        step(i)
    times, exchange = [], 0.0
    for i in range(3, 3 + steps):
        before = sum(t._exchange.stats["seconds"] for t in tables if t._exchange is not None)
        world.barrier()
        t0 = time.perf_counter()
        step(i)
        world.barrier()
        times.append(time.perf_counter() - t0)
        exchange += sum(t._exchange.stats["seconds"] for t in tables if t._exchange is not None) - before
    result = {"step_s": statistics.median(times), "exchange_s": exchange / steps,
              "tokens_per_step": batch * spec.model.seq_len, "threads": torch.get_num_threads()}

    shard = ShardedTable(lookup_rows, lookup_dim, seed=3)
    local = EngramTable(lookup_rows, lookup_dim, "host", seed=3)
    local._exchange = None  # reads are local anyway; no updates here
    want = torch.unique(torch.randint(0, lookup_rows, (batch * spec.model.seq_len * 8,), generator=gen))

    def rate(table) -> float:
        table.read(want)
        world.barrier()
        t0 = time.perf_counter()
        for _ in range(10):
            table.read(want)
        world.barrier()
        return 10 * len(want) / (time.perf_counter() - t0)

    result.update(sharded_rows_per_s=rate(shard), local_rows_per_s=rate(local))
    if world.main:
        Path(out).write_text(json.dumps(result))
    if world.parallel:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        a = sys.argv[2:]
        _worker(a[0], a[1], int(a[2]), int(a[3]), int(a[4]), int(a[5]), a[6:])
