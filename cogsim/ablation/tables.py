"""The comparison of an ablation suite: per variant and metric, mean ± standard deviation over seeds
and the paired difference against the reference — the first variant: the full architecture of an
ablation, the floor arm of a task suite — with a Student-t confidence interval (the seeds fix
initialisation and data order alike for every variant, so results pair by seed); written as CSV
and as markdown tables."""
from __future__ import annotations

import csv
import math
from pathlib import Path

from cogsim.ablation.variants import Variant
from cogsim.data.synthetic import TASKS
from cogsim.evaluate.probes import METRICS as PROBE_METRICS
from cogsim.evaluate.stats import mean_std, paired_difference

#: what synthetic tasks add to a run's summary (:attr:`cogsim.data.synthetic.base.Task.report_metrics`)
TASK_METRICS = {name: direction for cls in TASKS.values() for name, (direction, _) in cls.report_metrics.items()}
#: (metric, direction): +1 higher is better, −1 lower is better
METRICS: tuple[tuple[str, int], ...] = (("val_bpb", -1), ("task_accuracy", +1), *TASK_METRICS.items(),
                                        *((m, +1) for m in PROBE_METRICS))


LABELS = {"val_bpb": "validation bits/byte", "task_accuracy": "synthetic task (answer accuracy)", "recall": "fact recall (accuracy)",
          "needle": "needle, multi-query (accuracy)", "vartrack": "variable tracking (accuracy)",
          "anomaly_lm": "anomaly AUC, LM surprisal", "anomaly_htm": "anomaly AUC, HTM signal",
          **{name: label for cls in TASKS.values() for name, (_, label) in cls.report_metrics.items()}}


def summarize(rows: list[dict], variants: list[str], metrics=METRICS, confidence: float = 0.95) -> list[dict]:
    """Per variant and metric: n, mean, std over seeds, and the paired difference variant − reference
    (the first variant; mean, its std, the t interval) over the seeds both have. Metrics that are
    n/a everywhere (e.g. the HTM anomaly AUC of an architecture without HTM) are left out."""
    by = {(r["variant"], r["seed"]): r for r in rows}
    seeds = sorted({r["seed"] for r in rows})
    reference = variants[0]
    out = []
    for metric, direction in metrics:
        if all(r.get(metric) is None or not math.isfinite(r[metric]) for r in rows):
            continue
        ref = [by.get((reference, s), {}).get(metric) for s in seeds]
        for variant in variants:
            values = [by.get((variant, s), {}).get(metric) for s in seeds]
            mean, std, n = mean_std(values)
            row = {"variant": variant, "metric": metric, "better": "higher" if direction > 0 else "lower",
                   "n": n, "mean": mean, "std": std}
            if variant != reference:
                d = paired_difference(values, ref, confidence)
                row.update(diff=d.mean, diff_std=d.std, diff_n=d.n, ci_low=d.low, ci_high=d.high)
            else:
                row.update(diff=math.nan, diff_std=math.nan, diff_n=0, ci_low=math.nan, ci_high=math.nan)
            out.append(row)
    return out


SUMMARY_COLUMNS = ["variant", "metric", "better", "n", "mean", "std", "diff", "diff_std", "diff_n", "ci_low", "ci_high"]
RUN_COLUMNS = ["variant", "seed", "steps", "parameters", "seconds", "val_loss", "val_bpb", "task_accuracy",
               *TASK_METRICS, *PROBE_METRICS, "run_dir"]


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def write_csv(rows: list[dict], columns: list[str], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for row in rows:
            w.writerow([_cell(row.get(c)) for c in columns])
    tmp.replace(path)
    return path


def _fmt(x: float, digits: int, signed: bool = False) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def digits(metric: str) -> int:
    """Decimals shown for ``metric``: bits per byte 4, step counts 0, accuracies 3."""
    return 4 if metric == "val_bpb" else 0 if metric.endswith("_steps") else 3


def markdown(summary: list[dict], variants: list[Variant], seeds: list[int], header: str = "") -> str:
    """Two tables: mean ± std per variant and metric (with the number of seeds that have a value, when
    some do not), and the paired difference against the first variant."""
    metrics = list(dict.fromkeys(r["metric"] for r in summary))
    cells = {(r["variant"], r["metric"]): r for r in summary}
    arrows = {m: ("↓" if d < 0 else "↑") for m, d in METRICS}
    names = [v.name for v in variants]
    lines = [header.rstrip(), ""] if header else []
    lines += [f"Mean ± standard deviation over {len(seeds)} seed(s) ({', '.join(map(str, seeds))}); "
              "↓ lower is better, ↑ higher is better.", ""]
    lines.append("| variant | " + " | ".join(f"{LABELS.get(m, m)} {arrows.get(m, '')}" for m in metrics) + " |")
    lines.append("|---|" + "---:|" * len(metrics))

    def row(name: str, text) -> str:  # one table row; text(cell, metric) for cells that have a value
        return f"| {name} | " + " | ".join("n/a" if cells.get((name, m)) is None else text(cells[(name, m)], m)
                                           for m in metrics) + " |"

    def value(c: dict, m: str) -> str:
        if not math.isfinite(c["mean"]):
            return "n/a"
        text = f"{_fmt(c['mean'], digits(m))} ± {_fmt(c['std'], digits(m))}"
        return text + (f" ({c['n']} of {len(seeds)} seeds)" if c["n"] < len(seeds) else "")

    def difference(c: dict, m: str) -> str:
        if not math.isfinite(c["diff"]):
            return "n/a"
        d = digits(m)
        star = "*" if math.isfinite(c["ci_low"]) and (c["ci_low"] > 0 or c["ci_high"] < 0) else ""
        return f"{_fmt(c['diff'], d, True)} [{_fmt(c['ci_low'], d, True)}, {_fmt(c['ci_high'], d, True)}]{star}"

    lines += [row(name, value) for name in names]
    if len(names) > 1:
        conf = "95%"
        lines += ["", f"Paired difference variant − {names[0]} over the same seeds: mean [{conf} CI, Student t]; "
                  "* marks an interval that excludes 0.", ""]
        lines.append("| variant | " + " | ".join(f"Δ {LABELS.get(m, m)}" for m in metrics) + " |")
        lines.append("|---|" + "---:|" * len(metrics))
        lines += [row(name, difference) for name in names[1:]]
    lines += ["", "Variants:", ""]
    lines += [f"- `{v.name}`: {v.description}" for v in variants]
    return "\n".join(lines) + "\n"
