"""``cogsim graph FILE [-o graph.png]``: draw an architecture with node types and port labels."""
from __future__ import annotations

import argparse
from pathlib import Path

from cogsim.api import plan_of
from cogsim.commands.common import add_spec_arguments, console


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_spec_arguments(parser)
    parser.add_argument("-o", "--output", default=None, help="PNG to write (default: <file stem>.png here)")


def run(args: argparse.Namespace) -> int:
    from cogsim.viz.graph import draw_graph

    plan = plan_of(args.arch, overrides=args.overrides)
    out = Path(args.output or f"{Path(args.arch).stem}.png")
    draw_graph(plan, out)
    console().print(f"wrote {out}")
    return 0
