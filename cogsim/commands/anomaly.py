"""``cogsim anomaly A.csv [B.csv …] --out DIR``: HTM anomaly scores for CSV time series.

Every file (``timestamp,value``) is one stream of a single batched HTM detector; each gets
``DIR/<file name>`` with ``timestamp,value,anomaly_score``. With ``--labels`` (NAB's
combined_windows.json format) the scores are also rated the NAB way, one threshold for all files.
"""
from __future__ import annotations

import argparse

from cogsim.anomaly.files import PROFILES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="CSV", help="time series with timestamp,value columns")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the scored CSVs")
    parser.add_argument("--labels", metavar="JSON", help="anomaly windows (NAB combined_windows.json) to score against")
    parser.add_argument("--profile", choices=(*PROFILES, "all"), default="all",
                        help="NAB application profile(s) reported with --labels (default: all)")
    parser.add_argument("--device", default=None, help="torch device for the SP/TM (default: cpu)")
    parser.add_argument("--no-spatial", action="store_true",
                        help="don't score values outside the range seen so far (±5%%) as anomalies")
    parser.add_argument("--raw", action="store_true", help="report the raw TM anomaly instead of the log-likelihood")
    parser.add_argument("--details", action="store_true", help="also write raw_score and likelihood columns")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a detector setting (a DetectorConfig field, e.g. columns=1024; values "
                             "in YAML, as in run --set); repeatable")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def parse_settings(items: list[str]) -> dict:
    """``KEY=VALUE`` strings → typed DetectorConfig overrides (the ``--set`` dialect of every command)."""
    from cogsim.anomaly.detector import DetectorConfig
    from cogsim.graph.overrides import settings_overrides

    return settings_overrides(DetectorConfig, items)


def run(args: argparse.Namespace) -> int:
    from cogsim.anomaly.files import make_config, score_files

    config = make_config(parse_settings(args.set), spatial=not args.no_spatial, likelihood=not args.raw)
    profiles = PROFILES if args.profile == "all" else (args.profile,)
    return score_files(args.files, args.out, config, labels=args.labels, profiles=profiles, device=args.device,
                       details=args.details, quiet=args.quiet)
