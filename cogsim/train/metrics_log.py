"""A run's metrics log, ``metrics.jsonl``: one JSON row per line, appended as training goes.

A run killed while writing can leave a torn last line. Readers skip a line that does not parse
(it never held a complete row), so a resumed run, its report and ``cogsim ablate`` keep every
whole row instead of failing on the fragment."""
from __future__ import annotations

import json
from pathlib import Path


def read_rows(path: Path) -> list[dict]:
    """Every complete row of the log at ``path`` (none when it does not exist)."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn line left by a killed writer
        if isinstance(row, dict):
            rows.append(row)
    return rows


def write_rows(path: Path, rows: list[dict]) -> None:
    """Replace the log with ``rows`` (resume: drop what came after the checkpoint, and any fragment)."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def append_row(path: Path, row: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")
