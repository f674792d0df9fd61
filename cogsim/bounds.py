"""Bounds of parameter fields, declared once on the field and checked in one place.

A parameter dataclass (a component's ``Params``, a settings section) declares a field's range in its
annotation, ``slots: Annotated[int, Range(ge=1)] = 7``, also for list items
(``list[Annotated[int, Range(ge=2)]]``). Deriving from :class:`Checked` checks every such bound when
the record is made, then runs :meth:`Checked.check` for rules joining several fields. Every
rejection is a :class:`FieldError` naming its field, so the spec layer can point at that field's line.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import types
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin, get_type_hints

__all__ = ["Annotated", "Checked", "Count", "FieldError", "Positive", "Range", "Unit", "check_fields"]


class FieldError(ValueError):
    """A rejected value of one field; ``str()`` is ``"<field>: <message>"``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message

    def __reduce__(self):  # travels between processes (ablation workers) intact
        return type(self), (self.field, self.message)


@dataclass(frozen=True)
class Range:
    """Closed (``ge``, ``le``) or open (``gt``, ``lt``) bounds of a number; ``note`` says why or what
    a boundary value means (shown after the bound, e.g. "0: off")."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    note: str = ""

    def holds(self, value: float) -> bool:
        if isinstance(value, float) and math.isnan(value):
            return False
        return ((self.ge is None or value >= self.ge) and (self.gt is None or value > self.gt)
                and (self.le is None or value <= self.le) and (self.lt is None or value < self.lt))

    def __str__(self) -> str:
        low = (self.ge, "[") if self.ge is not None else (self.gt, "(") if self.gt is not None else None
        high = (self.le, "]") if self.le is not None else (self.lt, ")") if self.lt is not None else None
        if low and high:
            text = f"in {low[1]}{_num(low[0])}, {_num(high[0])}{high[1]}"
        elif low:
            text = f"{'≥' if low[1] == '[' else '>'} {_num(low[0])}"
        elif high:
            text = f"{'≤' if high[1] == ']' else '<'} {_num(high[0])}"
        else:
            text = "a number"
        return f"{text} ({self.note})" if self.note else text


#: the bounds most fields share
Count = Annotated[int, Range(ge=1)]  # at least one
Positive = Annotated[float, Range(gt=0)]
Unit = Annotated[float, Range(ge=0, le=1)]  # a probability, a permanence, a decay


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _is_number(value: Any, base: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) if base is int else isinstance(value, (int, float)) if base is float else False


def violation(tp: Any, value: Any) -> str | None:
    """What is wrong with ``value`` against the bounds inside type ``tp`` (None: nothing)."""
    origin = get_origin(tp)
    if origin is Annotated:
        base, *meta = get_args(tp)
        if _is_number(value, base):
            for bound in meta:
                if isinstance(bound, Range) and not bound.holds(value):
                    return f"must be {bound}, got {value!r}"
        return violation(base, value)
    if origin in (Union, types.UnionType):
        return next((v for v in (violation(a, value) for a in get_args(tp)) if v), None)
    if origin in (list, tuple) and isinstance(value, (list, tuple)):
        for item in value:
            wrong = violation(get_args(tp)[0], item)
            if wrong:
                return f"every item {wrong}"
    return None


def _has_bounds(tp: Any) -> bool:
    return get_origin(tp) is Annotated or any(_has_bounds(a) for a in get_args(tp))


@functools.cache
def _bounded_fields(cls: type) -> tuple[tuple[str, Any], ...]:
    hints = get_type_hints(cls, include_extras=True)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls) if _has_bounds(hints[f.name]))


def check_fields(record: Any) -> None:
    """Raise :class:`FieldError` for the first field of dataclass ``record`` outside its bounds."""
    for name, tp in _bounded_fields(type(record)):
        wrong = violation(tp, getattr(record, name))
        if wrong:
            raise FieldError(name, wrong)


class Checked:
    """Base of parameter dataclasses: bounds are checked when a record is made, then :meth:`check`."""

    def __post_init__(self) -> None:
        check_fields(self)
        self.check()

    def check(self) -> None:
        """Rules joining several fields (none by default); raise :class:`FieldError` naming the field
        the user should change."""
