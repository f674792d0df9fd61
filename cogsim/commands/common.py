"""Options and helpers shared by several subcommands."""
from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.table import Table

from cogsim.graph import bundled


def add_spec_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("arch", help="architecture YAML file, or the name of a bundled one: "
                                     + ", ".join(bundled.names()))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a field (value in YAML), e.g. --set train.lr=1e-3 --set nodes.block1.n_heads=8")


#: line width when output goes to a pipe or a file: wide enough that no table is ever cut
LOG_WIDTH = 1000


def to_terminal() -> bool:
    """Whether stdout is a terminal (not a pipe or a file), whatever colour settings say."""
    return sys.stdout.isatty()


def console() -> Console:
    """Rich console for command output. In a terminal it fits the window; in a pipe or a log file
    (where rich would assume 80 columns) lines are as long as their content."""
    return Console(highlight=False) if to_terminal() else Console(highlight=False, width=LOG_WIDTH)


class ReadableTable(Table):
    """A rich table whose cells wrap onto more lines instead of being cut to 'par…' when narrow."""

    def add_column(self, *args, **kwargs) -> None:
        kwargs.setdefault("overflow", "fold")
        super().add_column(*args, **kwargs)


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
