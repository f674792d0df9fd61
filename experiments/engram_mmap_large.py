"""Train briefly with an Engram table larger than this machine's RAM (memory-mapped file) and record
its step time against a small table. See experiments/README_engram.md.

    python experiments/engram_mmap_large.py                 # 36 GiB table, 40 steps per table
    python experiments/engram_mmap_large.py --table-gib 4 --steps 10   # a quick look

The large table lives in a sparse file under --dir (default: the system temp folder), which is
checked for free space first and deleted at the end. Results are appended to
experiments/results/engram_mmap_large.csv.
"""
from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from cogsim.bench.common import append_csv
from cogsim.bench.engram import BenchLM, training_step
from cogsim.engram.component import EngramParams
from cogsim.engram.tables import format_bytes, mem_available
from cogsim.errors import CogsimError

ROW_BYTES = 4 * (EngramParams().n_embed_per_ngram // EngramParams().n_head_per_ngram + 2)  # row + optimizer state


def rss_anon() -> int:
    """Anonymous resident memory of this process (file-backed mmap pages excluded)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0


def per_head_rows(table_bytes: float) -> int:
    """engram_vocab_size per head giving about ``table_bytes`` for the default orders and heads."""
    p = EngramParams()
    heads = (p.max_ngram_size - 1) * p.n_head_per_ngram
    return int(table_bytes / ROW_BYTES / heads)


CONFIGS = (("small", "device"), ("small", "mmap"), ("large", "mmap"))


def train_tables(args, large_rows: int, folder: Path) -> list[dict]:
    """Train the three configurations with their steps interleaved (A B C A B C …), so machine noise
    hits them alike; each sees the same batches."""
    batches = [torch.randint(0, args.vocab, (args.batch, args.seq_len + 1), generator=torch.Generator().manual_seed(i))
               for i in range(args.distinct_batches)]  # cycled
    runs = []
    for name, placement in CONFIGS:
        extra = {"engram_vocab_size": [large_rows] * (EngramParams().max_ngram_size - 1)} if name == "large" else {}
        path = folder / f"{name}.f32"
        t0 = time.perf_counter()
        model = BenchLM(args.vocab, args.d_model, args.seq_len, placement=placement, mmap_path=str(path), **extra)
        runs.append({"name": name, "placement": placement, "model": model, "path": path,
                     "build_s": time.perf_counter() - t0, "times": [], "losses": [],
                     "step": training_step(model, batches, prefetch_ahead=placement != "device")})
    for _ in range(args.steps):
        for run in runs:
            t = time.perf_counter()
            run["losses"].append(run["step"]())
            run["times"].append(time.perf_counter() - t)
    rows = []
    for run in runs:
        table, times = run["model"].engram.table, run["times"]
        timed = times[args.warmup:] or times
        rows.append({
            "table": run["name"], "placement": run["placement"], "table_bytes": table.nbytes,
            "table_size": format_bytes(table.nbytes), "rows": table.rows, "row_bytes": table.dim * 4,
            "ram_available": format_bytes(mem_available()), "steps": args.steps,
            "distinct_batches": args.distinct_batches, "batch": args.batch, "seq_len": args.seq_len,
            "threads": torch.get_num_threads(), "build_s": round(run["build_s"], 3),
            "first_step_ms": round(times[0] * 1e3, 2), "median_step_ms": round(statistics.median(timed) * 1e3, 2),
            "p90_step_ms": round(sorted(timed)[max(0, math.ceil(0.9 * len(timed)) - 1)] * 1e3, 2),
            "loss_first": round(run["losses"][0], 4), "loss_last": round(run["losses"][-1], 4),
            "file_allocated": format_bytes(_allocated(run["path"]))
            if run["placement"] == "mmap" else "",
            "rss_anon": format_bytes(rss_anon()), "prefetcher": str(run["model"].engram.prefetcher.stats)})
        run["model"].engram.close()
    return rows


def _allocated(path: Path) -> int:
    return path.stat().st_blocks * 512 if path.exists() else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table-gib", type=float, default=36.0, help="size of the large table (default 36 GiB)")
    parser.add_argument("--steps", type=int, default=40, help="training steps per table (default 40)")
    parser.add_argument("--warmup", type=int, default=5, help="first steps left out of the median (default 5)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--distinct-batches", type=int, default=4,
                        help="batches cycled through (default 4: the loss falls as the tables memorise them; "
                             "steps + 1: every step touches new rows)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="folder for the table files (default: temp)")
    parser.add_argument("--csv", default="experiments/results/engram_mmap_large.csv")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    folder = Path(tempfile.mkdtemp(prefix="cogsim_engram_large_", dir=args.dir))
    large_bytes = args.table_gib * 2**30
    free = shutil.disk_usage(folder).free
    print(f"RAM available {format_bytes(mem_available())}, disk free at {folder} {format_bytes(free)}; "
          f"large table {format_bytes(large_bytes)}")
    if large_bytes > free:
        print(f"not enough free disk for a {format_bytes(large_bytes)} table; use --dir or --table-gib", file=sys.stderr)
        return 2
    rows = []
    try:
        try:  # the same table in RAM is refused before anything is allocated
            BenchLM(args.vocab, args.d_model, args.seq_len, placement="host",
                    engram_vocab_size=[per_head_rows(large_bytes)] * 2)
            print("host placement of the large table was accepted (this machine has that much RAM)")
        except CogsimError as e:
            print(f"host placement refused as expected: {e}")
        rows = train_tables(args, per_head_rows(large_bytes), folder)
        for row in rows:
            print(f"{row['table']:5s} {row['placement']:6s} {row['table_size']:>10s}: median step "
                  f"{row['median_step_ms']:8.1f} ms (p90 {row['p90_step_ms']:.1f}, first {row['first_step_ms']:.1f}), "
                  f"loss {row['loss_first']} → {row['loss_last']}, file on disk {row['file_allocated'] or '-'}")
        print(f"anonymous RSS of the process: {rows[-1]['rss_anon']}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    base = next(r for r in rows if r["placement"] == "device")["median_step_ms"]
    for r in rows:
        r["vs_small_device"] = round(r["median_step_ms"] / base, 3)
    out = append_csv(args.csv, rows)
    print(f"large/small-device step ratio {rows[-1]['vs_small_device']}; appended {len(rows)} rows to {out}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
