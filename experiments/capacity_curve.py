"""Working-memory capacity curve: `copy` accuracy against the number of items for K workspace slots.

Every (K, items) pair is one run of the suite's workspace arm (experiments/memory_tasks/workspace.yaml,
the windowed floor + a workspace) on `copy` with ``nodes.workspace.slots=K`` and ``data.items=items``,
trained by the ablation runner (finished runs are picked up, interrupted ones resumed; ``--jobs``
single-thread workers). A workspace of K slots should hold about K items and fail beyond them.
Writes capacity_curve.csv and capacity_curve.png to ``--results``:

    python experiments/capacity_curve.py            # K 2,4,7,16 x items 1,2,4,8,12,16 x seeds 0,1

Every load sees at least ``--answers`` answers a step (one per item per sequence): with 32 sequences a
single item gives 32 answers a step, and at 400 steps K 7 stalled at 0.5 (seeds 0, 1), while 128
sequences reached 1.00 by step 200 (seed 0); fewer items therefore get more sequences.
"""
from __future__ import annotations

import argparse
import csv
import statistics
import sys
import textwrap
import time
from pathlib import Path

from cogsim.ablation.runner import SuiteProgress, run_suite
from cogsim.ablation.variants import Variant
from cogsim.errors import CogsimError
from cogsim.graph.build import build_plan
from cogsim.graph.spec import read_spec


def _ints(text: str, low: int = 1) -> list[int]:
    try:
        out = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not out or min(out) < low:
        raise argparse.ArgumentTypeError(f"expected integers ≥ {low}, got {text!r}")
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="experiments/memory_tasks/workspace.yaml", help="the workspace arm")
    p.add_argument("--node", default="workspace", help="the workspace node whose slots vary")
    p.add_argument("--slots", type=_ints, default=[2, 4, 7, 16], help="slot counts K")
    p.add_argument("--items", type=_ints, default=[1, 2, 4, 8, 12, 16], help="items to copy")
    p.add_argument("--delay", type=int, default=32, help="data.delay (beyond the floor's 28 tokens of reach)")
    p.add_argument("--vocab", type=int, default=32, help="data.vocab: content symbols (chance 1/vocab)")
    p.add_argument("--seq-len", type=int, default=64, help="data.seq_len (≥ 2·items + delay − 1)")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--batch-size", type=int, default=32, help="sequences per step (at least; see --answers)")
    p.add_argument("--answers", type=int, default=128,
                   help="answers per step at least: fewer items get more sequences (1 item: 128, 2: 64)")
    p.add_argument("--seeds", type=lambda text: _ints(text, 0), default=[0, 1], help="seeds: each point is their mean")
    p.add_argument("--jobs", type=int, default=2, help="worker processes (single-thread each)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="more overrides")
    p.add_argument("--out", default="runs/capacity-curve")
    p.add_argument("--results", default="experiments/results/memory_tasks")
    return p


def variants(args: argparse.Namespace) -> list[Variant]:
    """One variant per (K, items), named ``K<k>-items<n>``."""
    base = ["data.task=copy", f"data.delay={args.delay}", f"data.vocab={args.vocab}", f"data.seq_len={args.seq_len}",
            f"train.steps={args.steps}", "train.warmup=30",
            f"train.eval_every={args.steps}", "train.eval_batches=8", f"train.checkpoint_every={args.steps}",
            "train.log_every=10"]
    out = []
    for k in args.slots:
        for n in args.items:
            batch = max(args.batch_size, -(-args.answers // n))  # every load sees as many answers a step
            spec = read_spec(args.arch, [*base, f"train.batch_size={batch}", f"nodes.{args.node}.slots={k}",
                                         f"data.items={n}", *args.set])
            if spec.nodes[args.node].type != "workspace":
                raise CogsimError(f"{args.arch}: node {args.node!r} is a {spec.nodes[args.node].type}, not a workspace")
            build_plan(spec)
            out.append(Variant(f"K{k}-items{n}", f"{k} slots, {n} items", spec))
    return out


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for k in sorted({r["slots"] for r in rows}):
        mine = [r for r in rows if r["slots"] == k]
        by_items: dict[int, list[float]] = {}
        for r in mine:
            by_items.setdefault(r["items"], []).append(r["task_accuracy"])
        items = sorted(by_items)
        line, = ax.plot(items, [statistics.fmean(by_items[n]) for n in items], marker="o", label=f"K = {k} slots")
        ax.scatter([r["items"] for r in mine], [r["task_accuracy"] for r in mine], s=10, alpha=0.45,
                   color=line.get_color(), zorder=1)  # the single seeds behind each mean
        ax.axvline(k, color=line.get_color(), linestyle=":", linewidth=1)
    ax.axhline(rows[0]["task_chance"], color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set_xscale("log", base=2)
    items = sorted({r["items"] for r in rows})
    ax.set_xticks(items, [str(i) for i in items])
    ax.set_xlabel("items to hold (copy task)")
    ax.set_ylabel("answer accuracy (validation)")
    ax.set_ylim(0, 1.02)
    ax.set_title(textwrap.fill(title, 80), fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    start = time.perf_counter()
    trained = []

    def done(row: dict, skipped: bool) -> None:
        trained.append(not skipped)
        print(f"{row['variant']}: accuracy {row['task_accuracy']:.3f}{' (already done)' if skipped else ''}",
              flush=True)

    try:  # a bad grid, or --out holding runs of other settings: one line, nothing lost
        chosen = variants(args)
        found = run_suite(chosen, args.seeds, Path(args.out), progress=SuiteProgress(on_run_done=done),
                          jobs=args.jobs)
    except CogsimError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    wall = time.perf_counter() - start
    by_name = {v.name: v for v in chosen}
    rows = []
    for row in found:
        spec = by_name[row["variant"]].spec
        rows.append({"slots": spec.nodes[args.node].params["slots"], "items": spec.task.params.items,
                     "seed": row["seed"], "task_accuracy": row["task_accuracy"], "task_chance": 1 / args.vocab,
                     "steps": row["steps"], "batch_size": spec.train.batch_size, "seconds": row["seconds"]})
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    with open(results / "capacity_curve.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, results / "capacity_curve.png",
         f"copy, delay {args.delay}, {args.steps} steps x ≥{args.answers} answers, mean of seeds "
         f"{', '.join(map(str, args.seeds))} (dots: single seeds): {Path(args.arch).name} with K slots")
    what = (f"trained {sum(trained)} in {wall / 60:.1f} min with {args.jobs} job(s)" if any(trained)
            else "every one was already finished")
    print(f"{len(rows)} runs, {what}; wrote {results}/capacity_curve.csv, .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
