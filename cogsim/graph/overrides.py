"""``--set KEY=VALUE``: the one override dialect of every command.

KEY is a dotted path into a mapping (``train.lr``, ``nodes.block1.n_heads``, or a plain field name
such as ``columns`` for a flat settings record); VALUE is read as YAML, so ``1e-3``, ``true`` and
``[21, 9.5]`` mean what they say, and anything else stays a string.
"""
from __future__ import annotations

import dataclasses
import difflib
from typing import Any

from cogsim.errors import CogsimError, SpecError
from cogsim.graph.params import build_params
from cogsim.graph.yamlio import LineDict, load_value


def parse_override(item: str, file: str | None = None) -> tuple[list[str], Any]:
    """``"a.b=1e-3"`` → ``(["a", "b"], 0.001)``."""
    path, sep, text = item.partition("=")
    keys = [k.strip() for k in path.split(".")]
    if not sep or not all(keys):
        raise SpecError(f"--set expects KEY=VALUE (KEY a dotted path such as train.lr), got {item!r}", file)
    return keys, load_value(text)


def _closest(name: str, names) -> str:
    close = difflib.get_close_matches(name, [str(n) for n in names], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def apply_overrides(raw: dict, overrides: list[str] | None, file: str | None,
                    existing: tuple[str, ...] = ()) -> None:
    """Apply overrides to a YAML tree in place, creating missing mappings on the way.

    Under a top-level key listed in ``existing`` (``nodes``), a deeper path must name an entry that is
    already there: a typo must not create a new entry.
    """
    for item in overrides or []:
        keys, value = parse_override(item, file)
        where = f"--set {'.'.join(keys)}"
        node = raw
        for depth, k in enumerate(keys[:-1]):
            if not isinstance(node, dict):
                raise SpecError(f"{keys[depth - 1]!r} is not a mapping", file, where=where)
            if k not in node:
                if depth == 1 and keys[0] in existing:
                    what = keys[0][:-1] if keys[0].endswith("s") else keys[0]
                    raise SpecError(f"no {what} {k!r}{_closest(k, node)}", file, where=where)
                node[k] = LineDict()
            node = node[k]
        if not isinstance(node, dict):
            raise SpecError(f"cannot set a field inside a {type(node).__name__}", file, where=where)
        node[keys[-1]] = value
        if hasattr(node, "lines"):
            node.lines.setdefault(keys[-1], getattr(node, "line", None))


def settings_overrides(cls: type, overrides: list[str] | None) -> dict:
    """Typed values for fields of the flat settings dataclass ``cls`` (all fields have defaults).

    Each item is checked on its own (unknown field, type, range) so the error names it."""
    fields = [f.name for f in dataclasses.fields(cls) if f.init]
    out: dict[str, Any] = {}
    for item in overrides or []:
        keys, value = parse_override(item)
        where = f"--set {item}"
        if len(keys) > 1 or keys[0] not in fields:
            raise CogsimError(f"{where}: unknown setting {'.'.join(keys)!r}{_closest(keys[-1], fields)}; "
                              f"settings: {', '.join(fields)}")
        typed = build_params(cls, {keys[0]: value}, file=None, where=where, line=None)
        out[keys[0]] = getattr(typed, keys[0])
    return out


__all__ = ["apply_overrides", "parse_override", "settings_overrides"]
