"""Typed parameter records from YAML mappings: unknown, missing and mistyped fields are errors.

A component's ``Params`` is a dataclass. Supported annotations: ``int``, ``float``, ``bool``, ``str``,
``Literal[...]``, ``X | None``, ``list[X]``, ``tuple[X, ...]`` and ``dict[str, X]``, each may carry
bounds (``Annotated[int, Range(ge=1)]``, :mod:`cogsim.bounds`). A rejected value is reported at the
line of the field it names (:func:`spec_error`).
"""
from __future__ import annotations

import dataclasses
import difflib
import types
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from cogsim.bounds import FieldError
from cogsim.errors import SpecError
from cogsim.graph.yamlio import line_of


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp) if a is not type(None)) + " or null"
    if origin is tuple and len(get_args(tp)) > 1 and get_args(tp)[1] is not Ellipsis:
        return "a list [" + ", ".join(_type_name(a) for a in get_args(tp)) + "]"
    if origin in (list, tuple):
        return f"a list of {_type_name(get_args(tp)[0])}"
    if origin is dict:
        return f"a mapping of {_type_name(get_args(tp)[1])}"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(tp, str(tp))


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}" if not isinstance(value, (dict, list)) else type(value).__name__


def coerce(value: Any, tp: Any) -> Any:
    """Return ``value`` as type ``tp`` or raise ``TypeError`` with what was expected."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise TypeError(f"expected {_type_name(tp)}, got {_describe(value)}")
    if origin in (Union, types.UnionType):
        if value is None and type(None) in get_args(tp):
            return None
        for arg in get_args(tp):
            if arg is type(None):
                continue
            try:
                return coerce(value, arg)
            except TypeError:
                continue
        raise TypeError(f"expected {_type_name(tp)}, got {_describe(value)}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"expected {_type_name(tp)}, got {_describe(value)}")
        args = get_args(tp)
        if origin is tuple and len(args) > 1 and args[1] is not Ellipsis:  # fixed length: tuple[int, float]
            if len(value) != len(args):
                raise TypeError(f"expected {_type_name(tp)}, got {_describe(value)}")
            return tuple(coerce(v, a) for v, a in zip(value, args))
        item = args[0]
        out = [coerce(v, item) for v in value]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise TypeError(f"expected {_type_name(tp)}, got {_describe(value)}")
        return {str(k): coerce(v, get_args(tp)[1]) for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    else:
        return value
    raise TypeError(f"expected {_type_name(tp)}, got {_describe(value)}")


def build_params(cls: type, mapping: dict, *, file: str | None, where: str, line: int | None) -> Any:
    """Instantiate dataclass ``cls`` from a YAML mapping, raising :class:`SpecError` with file:line."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in mapping.items():
        key_line = line_of(mapping, key, line)
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            known = ", ".join(fields) or "none"
            raise SpecError(f"unknown parameter {key!r}{hint}; known parameters: {known}",
                            file, key_line, where)
        try:
            kwargs[key] = coerce(value, hints[key])
        except TypeError as e:
            raise SpecError(f"parameter {key!r}: {e}", file, key_line, where) from None
    missing = [n for n, f in fields.items() if n not in kwargs and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise SpecError(f"missing required parameter {missing[0]!r} ({_type_name(hints[missing[0]])})",
                        file, line, where)
    try:
        return cls(**kwargs)
    except ValueError as e:
        raise spec_error(e, mapping, file, line, where) from None


def spec_error(error: ValueError, mapping: dict, file: str | None, line: int | None, where: str) -> SpecError:
    """The one-line error for a value a record rejected: at the line of the field a
    :class:`~cogsim.bounds.FieldError` names (``line`` when the file does not give that field)."""
    if isinstance(error, FieldError):
        return SpecError(f"parameter {error.field!r}: {error.message}", file, line_of(mapping, error.field, line),
                         where)
    return SpecError(str(error), file, line, where)


def params_to_dict(params: Any) -> dict:
    """The plain mapping of a params record (for resolved configs)."""
    return dataclasses.asdict(params) if dataclasses.is_dataclass(params) else {}


__all__ = ["build_params", "coerce", "params_to_dict", "spec_error"]
