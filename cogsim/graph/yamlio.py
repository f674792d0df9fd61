"""Safe YAML reading that remembers the line of every key and list item (for error messages).

Numbers follow YAML 1.2 where PyYAML's YAML 1.1 differs: ``1e-3`` and ``3E5`` are floats, not strings.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from cogsim.errors import SpecError


class LineDict(dict):
    """A dict that knows the 1-based line of each key (``.lines``) and of itself (``.line``)."""

    line: int | None = None

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.lines: dict[Any, int] = {}


class LineList(list):
    """A list that knows the 1-based line of each item (``.lines``) and of itself (``.line``)."""

    line: int | None = None

    def __init__(self, *a):
        super().__init__(*a)
        self.lines: list[int] = []


def line_of(container: Any, key: Any, default: int | None = None) -> int | None:
    """Line of ``container[key]`` if known, else ``default``."""
    lines = getattr(container, "lines", None)
    if isinstance(lines, dict):
        return lines.get(key, default)
    if isinstance(lines, list) and isinstance(key, int) and 0 <= key < len(lines):
        return lines[key]
    return default


class Loader(yaml.SafeLoader):
    """Safe loading with YAML 1.2 floats: an exponent needs neither a dot nor a sign (``1e-3``)."""


Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+.0123456789"))


def load_value(text: str) -> Any:
    """One value written in YAML (a ``--set`` right-hand side): ``1e-3`` → 0.001, ``[1, 2]`` → list.

    Text that is not valid YAML on its own is returned unchanged as a string."""
    if not text.strip():
        return None
    try:
        return _unlined(yaml.load(text, Loader=Loader))
    except yaml.YAMLError:
        return text


def _unlined(value: Any) -> Any:
    """Mappings and lists as LineDict/LineList that know no lines (the value came from no file)."""
    if isinstance(value, dict):
        return LineDict({k: _unlined(v) for k, v in value.items()})
    if isinstance(value, list):
        return LineList([_unlined(v) for v in value])
    return value


def _convert(node: yaml.Node, loader: yaml.SafeLoader, file: str) -> Any:
    line = node.start_mark.line + 1
    plain = {yaml.MappingNode: "tag:yaml.org,2002:map", yaml.SequenceNode: "tag:yaml.org,2002:seq"}
    if type(node) in plain and node.tag != plain[type(node)]:
        raise SpecError(f"not valid YAML: tag {node.tag!r} is not allowed (files are read with safe loading)",
                        file, line)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out = LineDict()
        out.line = line
        for key_node, value_node in node.value:
            key = _convert(key_node, loader, file)
            if isinstance(key, (dict, list)):
                raise SpecError("a mapping key must be a plain value", file, key_node.start_mark.line + 1)
            if key in out:
                raise SpecError(f"duplicate key {key!r} (first defined on line {out.lines[key]})",
                                file, key_node.start_mark.line + 1)
            out[key] = _convert(value_node, loader, file)
            out.lines[key] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        out = LineList()
        out.line = line
        for item in node.value:
            out.append(_convert(item, loader, file))
            out.lines.append(item.start_mark.line + 1)
        return out
    return loader.construct_object(node, deep=True)


def load_yaml(path: str | Path, text: str | None = None) -> Any:
    """Safe-load a YAML document into LineDict/LineList; errors become :class:`SpecError`."""
    file = str(path)
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SpecError("file not found", file) from None
        except IsADirectoryError:
            raise SpecError("is a directory, expected a YAML file", file) from None
        except UnicodeDecodeError:
            raise SpecError("not a text file (could not decode as UTF-8)", file) from None
    try:
        loader = Loader(text)
    except yaml.reader.ReaderError as e:  # control characters: a binary file, most likely
        line = text.count("\n", 0, e.position) + 1
        raise SpecError(f"not a YAML text file: unexpected control character #x{e.character:04x} "
                        f"(is it a binary file?)", file, line) from None
    try:
        root = loader.get_single_node()
        if root is None:
            raise SpecError("the file is empty; expected a mapping with 'model', 'nodes' and 'stack' or 'edges'", file, 1)
        return _convert(root, loader, file)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        raise SpecError(f"not valid YAML: {e.problem or e.context}", file, line) from None
    except yaml.YAMLError as e:
        raise SpecError(f"not valid YAML: {str(e).splitlines()[0]}", file) from None
    finally:
        loader.dispose()
