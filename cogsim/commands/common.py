"""Options and helpers shared by several subcommands."""
from __future__ import annotations

import argparse

from rich.console import Console

from cogsim.graph import bundled


def add_spec_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("arch", help="architecture YAML file, or the name of a bundled one: "
                                     + ", ".join(bundled.names()))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a field (value in YAML), e.g. --set train.lr=1e-3 --set nodes.block1.n_heads=8")


def console() -> Console:
    return Console(highlight=False)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def human_count(n: float) -> str:
    for unit, div in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f}{unit}"
    return f"{n:.0f}"
