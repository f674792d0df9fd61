"""Estimate how long an ablation suite takes before running it.

Times training steps of every variant of the suite (its batch size and sequence length, random
token ids, the real optimizer and sparse table updates) with the torch thread count each run will
get, then adds a per-run overhead (evaluations, probes, corpus loading, checkpoints) and spreads the
runs over the suite's jobs. Usage:

    python experiments/ablation_budget.py experiments/memory_ablations.yaml [--steps 5] [--overhead 21]
"""
from __future__ import annotations

import argparse
import os
import time

import torch

from cogsim.bench.model import Subject
from cogsim.ablation.suite import load_suite
from cogsim.ablation.variants import make_variants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per variant (after one warm-up step)")
    parser.add_argument("--overhead", type=float, default=21.0,
                        help="seconds per run besides training steps (3 evaluations, probes, corpus, checkpoints)")
    parser.add_argument("--jobs", type=int, help="default: the suite's jobs")
    args = parser.parse_args()
    suite = load_suite(args.suite)
    jobs = args.jobs or suite.jobs
    threads = max(1, (os.cpu_count() or 1) // jobs)
    torch.set_num_threads(threads)
    variants = make_variants(suite.architecture, suite.overrides, suite.variants)
    train = variants[0].spec.train
    per_step = {}
    for v in variants:
        subject = Subject(v.name, v.spec, torch.device("cpu"), v.spec.train.batch_size, v.spec.model.seq_len)
        subject.train_step()
        t0 = time.perf_counter()
        for _ in range(args.steps):
            subject.train_step()
        per_step[v.name] = (time.perf_counter() - t0) / args.steps
        print(f"{v.name:<14} {per_step[v.name]:.3f} s/step  ({threads} thread(s), batch {v.spec.train.batch_size})")
    runs = [per_step[v.name] * train.steps + args.overhead for v in variants for _ in suite.seeds]
    work = sum(runs)
    wall = max(work / jobs, max(runs))
    print(f"{len(runs)} runs × {train.steps} steps: {work / 60:.1f} min of work, about {wall / 60:.1f} min "
          f"with {jobs} job(s) (+ up to {max(runs) / 60:.1f} min while the last run finishes alone)")


if __name__ == "__main__":
    main()
