"""The run report: figures (``figures/*.png``) and one self-contained ``report.html`` (images
embedded as data URIs, no external files, works offline) with captions, the run summary and the
probe-task accuracies. Called at the end of ``cogsim run`` and by ``cogsim viz``."""
from __future__ import annotations

import base64
import datetime as dt
import html
import json
import math
from dataclasses import dataclass
from pathlib import Path

from cogsim.train import metrics_log
from cogsim.viz.figures import Context, Figure, log, make_figures
from cogsim.viz.probes import MAX_TOKENS, Probe, default_probes, task_probes

#: summary.json fields shown in the report, with how to print them
SUMMARY_FIELDS = [
    ("architecture", "architecture", str), ("run_dir", "run folder", str), ("device", "device", str),
    ("corpus", "corpus", str), ("parameters", "parameters", lambda v: f"{v:,}"),
    ("vocab_size", "vocabulary", str), ("steps", "steps", str), ("tokens", "tokens", lambda v: f"{v:,}"),
    ("seconds", "time", lambda v: f"{v:.1f} s"), ("tokens_per_s", "throughput", lambda v: f"{v:,.0f} tok/s"),
    ("first_train_loss", "first train loss", lambda v: f"{v:.4f}"),
    ("last_train_loss", "last train loss", lambda v: f"{v:.4f}"),
    ("first_val_loss", "first validation loss", lambda v: f"{v:.4f}"),
    ("val_loss", "validation loss", lambda v: f"{v:.4f}"), ("val_bpb", "validation bits/byte", lambda v: f"{v:.4f}"),
    ("task", "synthetic task", str), ("task_answer", "answer positions hold", str),
    ("task_accuracy", "answer accuracy (validation)", lambda v: f"{v:.3f}"),
    ("task_chance", "chance level of the answers", lambda v: f"{v:.3f}"),
    ("accuracy_before_switch", "online accuracy just before the switch", lambda v: f"{v:.3f}"),
    ("accuracy_after_switch", "online accuracy at the end", lambda v: f"{v:.3f}"),
    ("recovery_steps", "steps to recover after the switch", str),
]
#: summary.json keys that may hold probe-task results
TASK_KEYS = ("probes", "probe_tasks")
TASK_HEADER = ["task", "score", "measure", "scored", "chance", "note"]

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2rem auto; max-width: 1800px;
       padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
.sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: .5rem 0; font-size: .92rem; }
td, th { border: 1px solid #ddd; padding: .25rem .7rem; text-align: left; } td.num { text-align: right; }
th { background: #f4f4f4; }
figure { margin: 1.5rem 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .92rem; color: #333; max-width: 1000px; } figcaption b { display: block; font-size: 1rem; }
pre { background: #f7f7f7; padding: .6rem; overflow-x: auto; font-size: .82rem; max-height: 16rem; }
nav a { margin-right: 1rem; }
.overview { display: flex; flex-wrap: wrap; gap: 2.5rem; align-items: flex-start; }
.overview > div { max-width: 680px; } .overview figure { margin: 0; max-width: 560px; }
.overview figure img { max-height: 85vh; } .warn { color: #a33; } code { background: #f2f2f2; padding: 0 .2rem; }
"""


def _png_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _summary_rows(summary: dict) -> list[tuple[str, str]]:
    rows = []
    for key, label, fmt in SUMMARY_FIELDS:
        v = summary.get(key)
        if v is None or (_number(v) and isinstance(v, float) and math.isnan(v)):
            continue
        try:
            rows.append((label, fmt(v)))
        except (TypeError, ValueError):
            rows.append((label, str(v)))
    return rows


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def task_rows(summary: dict, details: dict | None = None) -> list[tuple[str, ...]]:
    """(task, score, measure, scored, chance, note) per probe task: from ``probes.json`` (metric →
    {value, kind, n, chance, note, …}) when given, else from ``summary['probes']`` (metric → value)."""
    found = details or next((summary[k] for k in TASK_KEYS if summary.get(k)), None)
    if not isinstance(found, dict):
        return []
    rows = []
    for name, value in found.items():
        if isinstance(value, dict):
            rows.append((str(name), _fmt(value.get("value", value.get("accuracy"))), str(value.get("kind", "")),
                         _fmt(value.get("n")), _fmt(value.get("chance")), str(value.get("note") or "")))
        elif value is None or _number(value):
            rows.append((str(name), _fmt(value), "", "", "", ""))
    return rows


def _table(rows, header=None) -> str:
    head = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table>{head}{body}</table>"


def _figure(i: int, f: Figure) -> str:
    return (f"<figure id='fig{i}'><img src='{_png_uri(f.path)}' alt='{html.escape(f.title)}'>"
            f"<figcaption><b>{html.escape(f.title)}</b>{html.escape(f.caption)}</figcaption></figure>")


def render_html(title: str, subtitle: str, summary: dict, figures: list[Figure], probes: list[Probe],
                failures: list[str], command: str, task_details: dict | None = None) -> str:
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{CSS}</style></head><body>", f"<h1>{html.escape(title)}</h1>",
             f"<p class='sub'>{html.escape(subtitle)}</p>"]
    nav = ["<a href='#summary'>summary</a>"] + [f"<a href='#fig{i}'>{html.escape(f.title)}</a>"
                                                for i, f in enumerate(figures)]
    parts.append("<nav>" + " ".join(nav) + "</nav>")
    rows = _summary_rows(summary)
    left = ["<h2 id='summary'>Run summary</h2>", _table(rows) if rows else
            "<p>No <code>summary.json</code> in the run folder (the run has not finished).</p>"]
    tasks = task_rows(summary, task_details)
    if tasks:
        left.append("<h2>Probe tasks</h2>" + _table(tasks, TASK_HEADER) +
                    "<p class='sub'>Accuracy of exact answers (recall, needle, variable tracking) or AUC of "
                    "anomaly scores; higher is better, compare with chance.</p>")
    if failures:
        left.append("<h2>Figures not drawn</h2><ul>" + "".join(f"<li class='warn'>{html.escape(f)}</li>"
                                                               for f in failures) + "</ul>")
    side = [_figure(i, f) for i, f in enumerate(figures) if f.overview]
    parts.append("<div class='overview'><div>" + "".join(left) + "</div>" + "".join(side) + "</div>")
    if any(not f.overview for f in figures):
        parts.append("<h2>Figures</h2>")
    parts += [_figure(i, f) for i, f in enumerate(figures) if not f.overview]
    if probes:
        parts.append("<h2>Probe texts</h2><p>The figures show the model reading these texts (cut to the model's "
                     f"sequence length, at most {MAX_TOKENS} tokens), with the recorder on.</p>")
        for p in probes:
            parts.append(f"<p><b>{html.escape(p.name)}</b>: {html.escape(p.title)}, {len(p.ids)} tokens</p>"
                         f"<pre>{html.escape(p.text)}</pre>")
    parts.append(f"<p class='sub'>Regenerate: <code>{html.escape(command)}</code></p></body></html>")
    return "\n".join(parts)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except (OSError, json.JSONDecodeError):
        return {}


def _metrics(run_dir: Path) -> list[dict]:
    return metrics_log.read_rows(run_dir / "metrics.jsonl")


@dataclass
class Report:
    """What :func:`make_report` wrote: the page, the figures drawn and the ones that failed."""

    path: Path
    figures: list[Figure]
    failures: list[str]
    summary: dict


def write_report(run_dir: str | Path, model=None, data=None, out: str | Path | None = None,
                 text: str | None = None) -> Path:
    """:func:`make_report`, returning the report's path (the signature ``cogsim run`` calls)."""
    return make_report(run_dir, model, data, out, text).path


def make_report(run_dir: str | Path, model=None, data=None, out: str | Path | None = None,
                text: str | None = None) -> Report:
    """Draw the figures of the run in ``run_dir`` into ``out/figures/`` and write ``out/report.html``
    (``out`` defaults to the run folder).

    ``model``: the trained CognitiveModel (None: rebuilt from the run folder with
    :func:`cogsim.runs.load_run`); ``data``: the run's TokenData when at hand (its tokenizer and
    validation split give the probe text without reading the corpus again); ``text``: a probe text
    of one's own instead of the validation snippet.
    """
    run_dir = Path(run_dir)
    out_dir = Path(out) if out is not None else run_dir
    if model is None:
        from cogsim.runs import load_run

        loaded = load_run(run_dir)
        model, tokenizer = loaded.model, loaded.tokenizer
    elif data is not None:
        tokenizer = data.tokenizer
    elif model.plan.spec.task is not None:
        tokenizer = model.plan.spec.task.vocab
    else:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(run_dir / "tokenizer.json"))
    spec = model.plan.spec
    summary = _read_json(run_dir / "summary.json")
    ctx = Context(model, tokenizer, [], _metrics(run_dir), out_dir / "figures")
    try:
        ctx.probes = (task_probes(spec.task) if spec.task is not None else
                      default_probes(tokenizer, model.plan.sizes.seq_len, spec.data.path, spec.data.val_percent,
                                     data=data, text=text))
    except Exception as e:  # noqa: BLE001 - without probes, the graph and curves still come out
        ctx.failures.append(f"probe texts: {type(e).__name__}: {e}")
        log.warning("cogsim viz: warning: probe texts: %s", e)
    figures = make_figures(ctx)
    state = f"step {summary['steps']}" if "steps" in summary else "unfinished run"
    subtitle = (f"{spec.description + ' — ' if spec.description else ''}{state}; report written "
                f"{dt.datetime.now():%Y-%m-%d %H:%M}")
    command = f"python -m cogsim viz {run_dir}" + (f" --out {out}" if out is not None else "")
    page = render_html(f"cogsim run report: {spec.name}", subtitle, summary, figures, ctx.probes, ctx.failures,
                       command, _read_json(run_dir / "probes.json"))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "report.html"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return Report(path, figures, ctx.failures, summary)
