"""Probe texts the figures are drawn on: a snippet of the run's validation split (real text the
model never trained on) and a synthetic text that repeats one passage, so that sequence memories
(HTM, Engram) have something to recognise the second time round."""
from __future__ import annotations

import os
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from cogsim.data.corpus import _is_val
from cogsim.data.tokenizer import EOT

#: the passage repeated by the synthetic probe (plain Python, tokenizes the same on any code corpus)
PATTERN = "for item in items:\n    total += item.size\n"
#: used when the run's corpus cannot be read any more (moved run folder, deleted --data path)
FALLBACK = '''def mean(values):
    """Arithmetic mean of a non-empty sequence."""
    total = 0.0
    for value in values:
        total += value
    return total / len(values)


class Counter:
    def __init__(self):
        self.counts = {}

    def add(self, key):
        self.counts[key] = self.counts.get(key, 0) + 1
        return self.counts[key]
'''
STARTS = ("def ", "class ", "    def ")
SKIP_DIRS = {"__pycache__", "site-packages", "dist-packages"}
#: probes are cut to the model's sequence length and to this many tokens (4 readable rows in a figure)
MAX_TOKENS = 256


@dataclass
class Probe:
    """A probe text cut to the model's sequence length, with its token ids."""

    name: str
    title: str
    text: str
    ids: list[int]


def _read(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None
    return text if text.strip() else None


def _files(root: Path, suffix: str | None) -> list[tuple[str, Path]]:
    """(relative name, path) of a folder corpus's files in the corpus's order (hidden entries,
    caches and installed packages pruned while walking, which keeps the stdlib walk fast)."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS]
        for name in files:
            if not name.startswith(".") and (not suffix or name.endswith(suffix)):
                path = Path(folder) / name
                found.append((path.relative_to(root).as_posix(), path))
    return sorted(found, key=lambda f: f[0].split("/"))


def _first_validation_file(root: Path, val_percent: float, suffix: str | None) -> str | None:
    """Text of the first validation file of a folder corpus (the corpus's split rule by file name;
    a folder without one keeps its first file for validation)."""
    files = _files(root, suffix)
    for rel, path in files:
        if _is_val(rel, val_percent) and (text := _read(path)):
            return text
    return next((t for _, p in files if (t := _read(p))), None)


def validation_text(data_path: str | None, val_percent: float, data=None, tokens: int = 4096) -> tuple[str, str]:
    """(text, where) from the validation split: decoded from ``data.val`` when the run's
    :class:`~cogsim.data.tokenizer.TokenData` is at hand, else read from the corpus files."""
    if data is not None and len(data.val):
        text = data.tokenizer.decode([int(i) for i in data.val[:tokens]], skip_special_tokens=False)
        return text.split(EOT)[0], "the validation split"
    try:
        if data_path is None:
            text = _first_validation_file(Path(sysconfig.get_paths()["stdlib"]), val_percent, ".py")
        elif Path(data_path).is_dir():
            text = _first_validation_file(Path(data_path), val_percent, None)
        else:
            lines = Path(data_path).read_text(encoding="utf-8").splitlines(keepends=True)
            cut = min(len(lines) - 1, max(1, round(len(lines) * (1 - val_percent / 100))))
            text = "".join(lines[cut:])
    except (OSError, UnicodeDecodeError):
        text = None
    return (text, "the validation split") if text else (FALLBACK, "a built-in snippet (corpus not readable)")


def snippet(text: str) -> str:
    """From the first line that opens a function or class (else from the start)."""
    for i, line in enumerate(text.splitlines(keepends=True)):
        if line.startswith(STARTS):
            return "".join(text.splitlines(keepends=True)[i:])
    return text


def make_probe(name: str, title: str, text: str, tokenizer, seq_len: int) -> Probe:
    ids = tokenizer.encode(text, add_special_tokens=False).ids[:seq_len]
    return Probe(name, title, tokenizer.decode(ids, skip_special_tokens=False), ids)


def default_probes(tokenizer, seq_len: int, data_path: str | None = None, val_percent: float = 5.0,
                   data=None, text: str | None = None) -> list[Probe]:
    """The probes of a run: the validation snippet (or the user's ``text``) and the repeated pattern,
    each at most ``min(seq_len, MAX_TOKENS)`` tokens."""
    seq_len = min(seq_len, MAX_TOKENS)
    if text is not None:
        first = make_probe("text", "the text given with --text", text, tokenizer, seq_len)
    else:
        val, where = validation_text(data_path, val_percent, data)
        first = make_probe("validation", f"a snippet of {where}", snippet(val), tokenizer, seq_len)
    pattern = PATTERN * max(1, seq_len // 4)
    return [first, make_probe("pattern", "one passage repeated", pattern, tokenizer, seq_len)]
