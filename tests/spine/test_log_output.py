"""Output that goes to a pipe or a log file is complete: tables are not cut to 'par…', and `run`
prints the training loss every ``train.log_every`` steps (a progress bar would show it only at the end)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from cogsim.cli import main
from cogsim.commands import check

ROOT = Path(__file__).resolve().parents[2]


def piped(*args, cwd: Path) -> str:
    """stdout of ``python -m cogsim ARGS`` read through a pipe, as a log collector would."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "FORCE_COLOR")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-m", "cogsim", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_run_logs_the_training_loss_and_a_whole_summary_in_a_pipe(tiny_arch, tiny_corpus, tmp_path):
    out = tmp_path / "run"
    text = piped("run", str(tiny_arch), "--data", str(tiny_corpus), "--steps", "4", "--out", str(out), "--no-viz",
                 "--set", "train.log_every=2", "--set", "data.probe_count=0", cwd=tmp_path)
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = {r["step"]: r["loss"] for r in logged if "loss" in r}
    assert sorted(losses) == [2, 4]
    for step, loss in losses.items():
        assert re.search(rf"^step {step}/4: train loss {loss:.4f}, [\d,]+ tok/s$", text, re.M), text
    assert "…" not in text and "\x1b[" not in text  # nothing cut, no terminal control codes
    assert re.search(r"│ validation bits/byte +│ +\d+\.\d{4} │", text)
    assert re.search(rf"│ run folder +│ +{re.escape(str(out))} │", text)


def test_check_tables_are_whole_in_a_pipe(tmp_path):
    text = piped("check", "engram_snn", cwd=tmp_path)
    assert "…" not in text
    header = next(line for line in text.splitlines() if "node" in line and "params" in line)
    assert "other memory" in header  # a header on one line, not folded
    assert re.search(r"│ engram +│ engram +│ x, ids +│ out, delta +│", text)
    assert re.search(r"│ snn +│ snn +│ x +│ out, rate, delta +│", text)
    widths = {len(line) for line in text.splitlines() if line.startswith(("┃", "│", "┏", "┡", "└"))}
    assert len(widths) == 2  # the two tables, each with all its rows at one width


def test_tables_wrap_instead_of_cutting_in_a_narrow_terminal(monkeypatch, capsys):
    narrow = Console(width=60, force_terminal=True, color_system=None, highlight=False)
    monkeypatch.setattr(check, "console", lambda: narrow)
    assert main(["check", "engram_snn"]) == 0
    text = capsys.readouterr().out
    assert "…" not in text
    rows = [line for line in text.splitlines() if line.startswith(("┃", "│"))]
    assert rows and max(len(line) for line in rows) <= 60
    assert "devic" in text and "e_tab" in text  # device_tables folded onto lines, not cut


def test_bench_model_table_is_whole_when_not_a_terminal(tiny_arch, tmp_path, capsys, monkeypatch):
    # under capsys stdout is not a terminal, as in a pipe
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    assert main(["bench", "model", str(tiny_arch), "--batch-size", "2", "--repeat", "1", "--csv",
                 str(tmp_path / "model.csv")]) == 0
    text = capsys.readouterr().out
    assert "…" not in text
    header = next(line for line in text.splitlines() if "variant" in line)
    for column in ("params", "train tok/s", "train ms", "train ratio", "infer tok/s", "infer ratio"):
        assert f" {column} " in header
