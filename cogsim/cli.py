"""The command line: one subcommand per module in ``cogsim.commands`` (run, check, graph, bench, …).

A user's mistake (:class:`~cogsim.errors.CogsimError`) prints one line and exits with status 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from cogsim import __version__
from cogsim.errors import CogsimError

#: subcommand name → module in cogsim.commands providing ``add_arguments(parser)`` and ``run(args)``.
COMMANDS = {
    "run": "Train and evaluate an architecture; writes a run folder.",
    "check": "Validate an architecture file and print a summary without training.",
    "graph": "Draw an architecture graph to a PNG.",
    "bench": "Benchmarks; each prints ratios against a baseline measured in the same run.",
    "viz": "Figures and an HTML report for a run folder.",
    "sample": "Generate text from a trained run: continue a prompt with its model and tokenizer.",
    "ablate": "Train an architecture and its memory ablations over seeds and compare them.",
    "anomaly": "HTM anomaly detection on CSV time series (timestamp,value).",
    "nab": "The HTM detector over a NAB checkout: NAB's results layout and its three profile scores.",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse's own convention)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _available(name: str):
    try:
        return importlib.import_module(f"cogsim.commands.{name}")
    except ModuleNotFoundError as e:
        if e.name == f"cogsim.commands.{name}":
            return None
        raise


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cogsim", description="Brain-inspired cognitive architecture simulator.")
    parser.add_argument("--version", action="version", version=f"cogsim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, help_text in COMMANDS.items():
        module = _available(name)
        if module is None:
            continue
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except CogsimError as e:
        print(f"cogsim {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"cogsim {args.command}: interrupted", file=sys.stderr)
        return 130
