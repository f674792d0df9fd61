"""``cogsim nab NAB_ROOT --out DIR``: the HTM detector over a NAB checkout, scored as NAB scores it.

``DIR`` takes the place of NAB's ``results/`` folder: ``DIR/<detector>/<category>/<detector>_<file>.csv``.
The logic is :mod:`cogsim.anomaly.nab_checkout`.
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", metavar="NAB_ROOT", help="a NAB checkout (its data/ and labels/ are read)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="results folder, laid out as NAB's results/ (DIR/<detector>/<category>/…)")
    parser.add_argument("--detector", default="cogsim", help="detector name in the results layout (default: cogsim)")
    parser.add_argument("--device", default=None, help="torch device for the SP/TM (default: cpu)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a detector setting (a DetectorConfig field, as in anomaly --set); repeatable")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from cogsim.anomaly.files import make_config
    from cogsim.anomaly.nab_checkout import run_checkout
    from cogsim.commands.anomaly import parse_settings

    config = make_config(parse_settings(args.set))
    run_checkout(args.root, args.out, config, detector=args.detector, device=args.device, quiet=args.quiet)
    return 0
