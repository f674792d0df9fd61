"""The architecture files that ship with cogsim, reachable by bare name (``cogsim run engram_snn``).

Their one source is the repository's top-level ``architectures/`` folder; a wheel holds the same files
as ``cogsim/architectures`` (setup.py). A source checkout or editable install finds the top-level
folder, an installed wheel the packaged one.
"""
from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parents[1]
FOLDERS = (_PACKAGE / "architectures", _PACKAGE.parent / "architectures")


def folder() -> Path | None:
    """Where the bundled architecture files are (None in a broken install)."""
    return next((d for d in FOLDERS if d.is_dir() and any(d.glob("*.yaml"))), None)


def names() -> list[str]:
    d = folder()
    return sorted(p.stem for p in d.glob("*.yaml")) if d else []


def resolve(arch: str | Path) -> Path:
    """``arch`` itself if it names an existing file or a path with a folder; else the bundled file of
    that name (``engram_snn`` or ``engram_snn.yaml``) if there is one; else ``arch`` unchanged."""
    path = Path(arch)
    if path.exists() or path.parent != Path("."):
        return path
    d = folder()
    stem = path.stem if path.suffix in (".yaml", ".yml") else path.name
    found = d / f"{stem}.yaml" if d else None
    return found if found is not None and found.is_file() else path


def not_found_hint() -> str:
    """What to say after 'file not found': the names that work anywhere."""
    return f"; bundled architectures (usable by name): {', '.join(names())}" if names() else ""


__all__ = ["folder", "names", "not_found_hint", "resolve"]
