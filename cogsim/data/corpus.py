"""Text corpora split by file into train/validation deterministically.

The embedded default is the Python standard library source of the running interpreter: real code,
tens of MB, no download. ``--data PATH`` takes a text file or a folder of text files.
"""
from __future__ import annotations

import hashlib
import os
import sys
import sysconfig
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from cogsim.errors import CogsimError


@dataclass
class Corpus:
    """Documents (relative name, text) of each split, and a fingerprint that changes with the data."""

    name: str
    train: list[tuple[str, str]]
    val: list[tuple[str, str]]
    fingerprint: str
    skipped: list[str] = field(default_factory=list)

    def bytes(self, split: str) -> int:
        return sum(len(t.encode("utf-8")) for _, t in getattr(self, split))


#: folders never read as text: caches and installed packages (pruned while walking, which keeps the
#: walk over the standard library fast)
SKIP_DIRS = {"__pycache__", "site-packages", "dist-packages"}


def is_validation(name: str, val_percent: float) -> bool:
    """The split rule: a file belongs to validation by a hash of its relative name."""
    return zlib.crc32(name.encode("utf-8")) % 10000 < val_percent * 100


def list_files(root: Path, suffix: str | None = None) -> list[Path]:
    """Files under ``root`` in a stable order (hidden entries and SKIP_DIRS pruned)."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS]
        found += [Path(folder) / f for f in files if not f.startswith(".") and (not suffix or f.endswith(suffix))]
    return sorted(found)


def _fingerprint(entries: list[tuple[str, int, int]], extra: str) -> str:
    h = hashlib.sha256(extra.encode())
    for name, size, mtime in entries:
        h.update(f"{name}\0{size}\0{mtime}\n".encode())
    return h.hexdigest()[:16]


def _read_files(root: Path, files: list[Path], name: str, val_percent: float, extra: str) -> Corpus:
    train, val, skipped, entries = [], [], [], []
    for path in files:
        rel = path.relative_to(root).as_posix() if path != root else path.name
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            skipped.append(rel)
            continue
        if not text.strip():
            continue
        st = path.stat()
        entries.append((rel, st.st_size, st.st_mtime_ns))
        (val if is_validation(rel, val_percent) else train).append((rel, text))
    if not train and not val:
        raise CogsimError(f"{root}: no readable UTF-8 text found")
    if not val or not train:  # tiny folders: keep at least one file on each side
        docs = sorted(train + val)
        if len(docs) < 2:
            return _split_text(root, docs[0][1], name, val_percent, _fingerprint(entries, extra))
        val, train = docs[:1], docs[1:]
    return Corpus(name, train, val, _fingerprint(entries, f"{extra}|{val_percent}"), skipped)


def _cut(lines: list[str], val_percent: float) -> int:
    return min(len(lines) - 1, max(1, round(len(lines) * (1 - val_percent / 100))))


def _split_text(root: Path, text: str, name: str, val_percent: float, fingerprint: str) -> Corpus:
    """One document: its last ``val_percent`` of lines is the validation split."""
    lines = text.splitlines(keepends=True)
    if len(lines) < 2:
        raise CogsimError(f"{root}: too little text to split into train and validation ({len(text)} characters)")
    cut = _cut(lines, val_percent)
    return Corpus(name, [(f"{root.name}[train]", "".join(lines[:cut]))],
                  [(f"{root.name}[val]", "".join(lines[cut:]))], f"{fingerprint}|{val_percent}")


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def default_corpus(val_percent: float = 5.0) -> Corpus:
    """The ``.py`` files of this interpreter's standard library (site-packages excluded)."""
    root = stdlib_root()
    files = list_files(root, ".py")
    if not files:
        raise CogsimError(f"no Python standard library sources found under {root}; pass --data PATH")
    version = ".".join(map(str, sys.version_info[:3]))
    return _read_files(root, files, f"python{version}-stdlib", val_percent, f"stdlib {version}")


def load_corpus(path: str | Path | None = None, val_percent: float = 5.0) -> Corpus:
    """The default corpus (``path`` None) or a user's text file / folder of text files."""
    if path is None:
        return default_corpus(val_percent)
    root = Path(path).expanduser()
    if not root.exists():
        raise CogsimError(f"--data {path}: no such file or directory")
    if root.is_file():
        try:
            text = root.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise CogsimError(f"--data {path}: not a UTF-8 text file") from None
        st = root.stat()
        return _split_text(root, text, root.stem, val_percent,
                           _fingerprint([(root.name, st.st_size, st.st_mtime_ns)], str(root.resolve())))
    files = list_files(root)
    if not files:
        raise CogsimError(f"--data {path}: the folder holds no files")
    return _read_files(root, files, root.name, val_percent, str(root.resolve()))


def first_validation_text(path: str | Path | None = None, val_percent: float = 5.0) -> str | None:
    """The first validation document of a corpus without reading the whole corpus (for probes)."""
    if path is not None and Path(path).is_file():
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines(keepends=True)
        except (OSError, UnicodeDecodeError):
            return None
        return "".join(lines[_cut(lines, val_percent):]) if len(lines) > 1 else None
    root = stdlib_root() if path is None else Path(path)
    files = list_files(root, ".py" if path is None else None)
    for candidate in [f for f in files if is_validation(f.relative_to(root).as_posix(), val_percent)] + files:
        try:
            text = candidate.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if text.strip():
            return text
    return None
