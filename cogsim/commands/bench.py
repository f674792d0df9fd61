"""``cogsim bench TARGET``: dispatch to ``cogsim.bench.<target>`` (each adds its own options)."""
from __future__ import annotations

import argparse
import importlib
import sys

from cogsim.threads import busy_warning

#: bench target → one-line description; the module cogsim.bench.<target> implements it.
TARGETS = {
    "model": "training/inference tokens/s of an architecture vs the plain transformer",
    "engram": "hashing, row gather and host/mmap placement vs device placement",
    "htm": "temporal memory steps/s and the anomaly pipeline, single and batched streams",
    "snn": "fused LIF forward+backward vs snntorch.Leaky stepped in a loop",
    "workspace": "workspace forward+backward vs a linear and a feed-forward layer of similar size",
    "dist": "data-parallel step time of 2 ranks vs 1 process, all-to-all share, sharded lookup vs local",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="target", required=True, parser_class=type(parser))
    for name, help_text in TARGETS.items():
        try:
            module = importlib.import_module(f"cogsim.bench.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"cogsim.bench.{name}":
                continue
            raise
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_bench=module.run)


def run(args: argparse.Namespace) -> int:
    warning = busy_warning()
    if warning:
        print(f"cogsim bench: {warning}", file=sys.stderr)
    return int(args._bench(args) or 0)
