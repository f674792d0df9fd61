"""``cogsim viz RUN_DIR [--out DIR] [--text TEXT]``: figures and a self-contained HTML report of a
trained run (the model reads probe texts with the recorder on)."""
from __future__ import annotations

import argparse
from pathlib import Path

from cogsim.commands.common import console
from cogsim.errors import CogsimError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a run folder written by `cogsim run`")
    parser.add_argument("--out", help="where figures/ and report.html go (default: the run folder)")
    text = parser.add_mutually_exclusive_group()
    text.add_argument("--text", help="a probe text of your own instead of the validation snippet")
    text.add_argument("--text-file", help="read the probe text from this file")


def run(args: argparse.Namespace) -> int:
    from cogsim.viz.report import write_report

    text = args.text
    if args.text_file:
        try:
            text = Path(args.text_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise CogsimError(f"--text-file {args.text_file}: {getattr(e, 'strerror', None) or e}") from None
    if text is not None and not text.strip():
        raise CogsimError("--text: the probe text is empty")
    if not Path(args.run_dir).is_dir():
        raise CogsimError(f"{args.run_dir}: no such run folder")
    report = write_report(args.run_dir, out=args.out, text=text)
    console().print(f"figures in {report.parent / 'figures'}, report: {report}")
    return 0
