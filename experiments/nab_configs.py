"""Score one detector configuration on a NAB checkout and append it to experiments/results/nab/configs.csv.

    python experiments/nab_configs.py NAB_ROOT --name NAME [--set KEY=VALUE ...] [--note TEXT]

runs ``cogsim nab NAB_ROOT --out DIR --set ...`` (DIR: ``--out``, default a temporary folder) and
records the three profile scores over the whole corpus, the out-of-sample scores (files in sorted
order, even and odd positions, each scored with the other's threshold) and each fold's own best
score, with the command that reproduces the run. ``--raw-from DIR`` skips the HTM: it takes the
``raw_score`` column of an earlier run's results in DIR (same settings except the scoring ones:
likelihood and spatial-anomaly fields) and recomputes only the scores.

How a configuration is chosen (docs/design.md §5.2.5): by its even-position fold alone
(``in_fold_standard_even``, the threshold optimised on that fold); its odd-position score with the
even fold's threshold (``oos_standard_odd``) is then a held-out figure.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CSV = ROOT / "experiments" / "results" / "nab" / "configs.csv"
#: DetectorConfig fields that change only the scoring of the raw anomaly, not the HTM
SCORING_FIELDS = {"probation_percent", "max_probation_rows", "use_likelihood", "reestimation_period",
                  "historic_window_size", "symmetric_tail", "spatial_anomaly", "spatial_tolerance"}
COLUMNS = ["date", "name", "settings", "standard", "low_fp", "low_fn", "oos_standard_odd", "oos_standard_even",
           "oos_standard_mean", "oos_low_fp_mean", "oos_low_fn_mean", "in_fold_standard_even",
           "in_fold_standard_odd", "files", "rows", "seconds", "load", "commit", "command", "note"]


def rescore(root: Path, raw_dir: Path, config, detector: str) -> dict:
    """Scores of the raw anomalies recorded in ``raw_dir`` under ``config``'s scoring settings."""
    from cogsim.anomaly.csvio import read_series
    from cogsim.anomaly.detector import rdse_resolution, score_series
    from cogsim.anomaly.nab import load_windows
    from cogsim.anomaly.nab_checkout import find_files, profile_scores, result_path

    names, labels = find_files(root)
    windows = load_windows(labels)
    results = {}
    for name in names:
        path = result_path(raw_dir, detector, name)
        if not path.exists():
            continue
        ts, values = read_series(root / "data" / name, warn=lambda m: None)
        with path.open() as f:
            rows = list(csv.DictReader(f))
        if "raw_score" not in rows[0]:
            raise SystemExit(f"{path}: no raw_score column (run without --raw-from first)")
        raw = np.array([float(r["raw_score"]) for r in rows])
        det = score_series(values, raw, config, rdse_resolution(values, config))
        results[name] = (ts, det.score)
    return {"files": len(results), "rows": sum(len(s) for _, s in results.values()), "seconds": 0.0,
            "profiles": profile_scores(results, windows, names)}


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "cogsim"], cwd=ROOT, capture_output=True, text=True)
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except OSError:
        return ""


def load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return ""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("root", type=Path, help="a NAB checkout (data/ and labels/)")
    p.add_argument("--name", required=True, help="a short name for the configuration")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="detector setting (repeatable)")
    p.add_argument("--out", type=Path, help="results folder (default: a temporary one)")
    p.add_argument("--raw-from", type=Path, metavar="DIR", help="reuse the raw scores of an earlier run in DIR")
    p.add_argument("--detector", default="cogsim")
    p.add_argument("--note", default="")
    p.add_argument("--csv", type=Path, default=CSV)
    args = p.parse_args(argv)

    from cogsim.anomaly.files import make_config
    from cogsim.anomaly.nab_checkout import run_checkout
    from cogsim.commands.anomaly import parse_settings

    overrides = parse_settings(args.set)
    config = make_config(overrides)
    sets = " ".join(f"--set {shlex.quote(s)}" for s in args.set)
    before, commit = load(), git_commit()
    if args.raw_from:
        htm = sorted(set(overrides) - SCORING_FIELDS)
        if htm:
            raise SystemExit(f"--raw-from: {', '.join(htm)} change the HTM; run them without --raw-from")
        summary = rescore(args.root, args.raw_from, config, args.detector)
        command = (f"python experiments/nab_configs.py NAB --name {args.name} {sets} "
                   f"--raw-from <results of the settings' HTM run>").replace("  ", " ")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            out = args.out or Path(tmp)
            summary = run_checkout(args.root, out, config, detector=args.detector, quiet=True)
        command = f"cogsim nab NAB --out DIR {sets}".strip()
    prof = summary["profiles"]
    std = prof["standard"]

    def r(x):
        return f"{x:.2f}"

    row = {"date": datetime.date.today().isoformat(), "name": args.name,
           "settings": " ".join(args.set) or "(defaults)", "standard": r(std["score"]),
           "low_fp": r(prof["reward_low_FP_rate"]["score"]), "low_fn": r(prof["reward_low_FN_rate"]["score"]),
           "oos_standard_odd": r(std["out_of_sample"]["odd_scored"]),
           "oos_standard_even": r(std["out_of_sample"]["even_scored"]),
           "oos_standard_mean": r(std["out_of_sample"]["mean"]),
           "oos_low_fp_mean": r(prof["reward_low_FP_rate"]["out_of_sample"]["mean"]),
           "oos_low_fn_mean": r(prof["reward_low_FN_rate"]["out_of_sample"]["mean"]),
           "in_fold_standard_even": r(std["in_fold"]["even"]), "in_fold_standard_odd": r(std["in_fold"]["odd"]),
           "files": summary["files"], "rows": summary["rows"], "seconds": summary["seconds"],
           "load": f"{before} / {load()}", "commit": commit, "command": command, "note": args.note}
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    new = not args.csv.exists()
    with args.csv.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        if new:
            w.writeheader()
        w.writerow(row)
    print(", ".join(f"{k}={row[k]}" for k in COLUMNS[:13]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
