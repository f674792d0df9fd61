"""Surrogate gradients of the spike (Heaviside) function, matching ``snntorch.surrogate`` (1.0).

Forward is always ``(u > 0)`` with ``u = mem - threshold``; the backward replaces the Dirac delta by a
smooth pseudo-derivative ``dS/du``. A :class:`Surrogate` is a name plus parameters, so the fused
kernels can evaluate the same derivative natively; ``spike(u)`` is the autograd form used by the
per-step loop. Any callable ``f(u) -> spikes`` with its own backward (e.g. an snntorch surrogate)
is accepted too: its elementwise derivative is obtained through autograd.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable

import torch

#: name → (kernel code, parameter names, snntorch defaults).
SURROGATES: dict[str, tuple[int, tuple[str, ...], tuple[float, ...]]] = {
    "atan": (0, ("alpha",), (2.0,)),
    "fast_sigmoid": (1, ("slope",), (25.0,)),
    "sigmoid": (2, ("slope",), (25.0,)),
    "straight_through": (3, (), ()),
    "triangular": (4, ("threshold",), (1.0,)),
    "heaviside": (5, (), ()),
    "spike_rate_escape": (6, ("beta", "slope"), (1.0, 25.0)),
    "sparse_fast_sigmoid": (7, ("slope", "B"), (25.0, 1.0)),
}
CUSTOM = -1  # kernel code of a callable surrogate (derivative precomputed by autograd)


@dataclass(frozen=True)
class Surrogate:
    """A named surrogate derivative with its parameters (snntorch's formulas and defaults)."""

    name: str = "atan"
    params: tuple[float, ...] = (2.0,)
    fn: Callable[[torch.Tensor], torch.Tensor] | None = None  # only for custom callables

    @property
    def kind(self) -> int:
        return CUSTOM if self.fn is not None else SURROGATES[self.name][0]

    def grad(self, u: torch.Tensor) -> torch.Tensor:
        """``dS/du`` elementwise (snntorch's backward formula with a unit upstream gradient)."""
        if self.fn is not None:
            with torch.enable_grad():
                v = u.detach().requires_grad_(True)
                (g,) = torch.autograd.grad(self.fn(v), v, torch.ones_like(v))
            return g
        p = self.params
        if self.name == "atan":
            return p[0] / 2 / (1 + (math.pi / 2 * p[0] * u).pow(2))
        if self.name == "fast_sigmoid":
            return 1.0 / (p[0] * u.abs() + 1.0).pow(2)
        if self.name == "sigmoid":
            e = torch.exp(-p[0] * u)
            return p[0] * e / (e + 1).pow(2)
        if self.name == "straight_through":
            return torch.ones_like(u)
        if self.name == "triangular":
            return torch.where(u >= 0, -p[0], p[0]).to(u.dtype)
        if self.name == "heaviside":
            return (u > 0).to(u.dtype)
        if self.name == "spike_rate_escape":
            return p[1] * torch.exp(-p[0] * (u - 1).abs())
        if self.name == "sparse_fast_sigmoid":
            return 1.0 / (p[0] * u.abs() + 1.0).pow(2) * (u > p[1]).to(u.dtype)
        raise AssertionError(self.name)

    def spike(self, u: torch.Tensor) -> torch.Tensor:
        """Heaviside of ``u`` with this surrogate as its backward (autograd)."""
        if self.fn is not None:
            return self.fn(u)
        return _Spike.apply(u, self)

    def describe(self) -> str:
        if self.fn is not None:
            return getattr(self.fn, "__name__", "custom")
        args = ", ".join(f"{n}={v:g}" for n, v in zip(SURROGATES[self.name][1], self.params))
        return f"{self.name}({args})"


class _Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u: torch.Tensor, surrogate: Surrogate) -> torch.Tensor:
        ctx.save_for_backward(u)
        ctx.surrogate = surrogate
        return (u > 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (u,) = ctx.saved_tensors
        return grad * ctx.surrogate.grad(u), None


_CALL = re.compile(r"^\s*([a-z_]+)\s*(?:\((.*)\))?\s*$")


def make_surrogate(name: str = "atan", **params: float) -> Surrogate:
    """A surrogate by snntorch name with keyword overrides of its parameters."""
    if name not in SURROGATES:
        raise ValueError(f"unknown surrogate {name!r}; expected one of {', '.join(SURROGATES)}")
    _, names, defaults = SURROGATES[name]
    unknown = set(params) - set(names)
    if unknown:
        raise ValueError(f"surrogate {name!r} has no parameter {sorted(unknown)[0]!r}"
                         f" (parameters: {', '.join(names) or 'none'})")
    return Surrogate(name, tuple(float(params.get(n, d)) for n, d in zip(names, defaults)))


def parse_surrogate(spec: str) -> Surrogate:
    """``"atan"``, ``"atan(alpha=3)"``, ``"fast_sigmoid(25)"`` → :class:`Surrogate`."""
    m = _CALL.match(spec)
    if not m:
        raise ValueError(f"cannot read surrogate {spec!r}; write e.g. 'atan' or 'fast_sigmoid(slope=25)'")
    name, arglist = m.group(1), (m.group(2) or "").strip()
    if name not in SURROGATES:
        raise ValueError(f"unknown surrogate {name!r}; expected one of {', '.join(SURROGATES)}")
    names = SURROGATES[name][1]
    kwargs: dict[str, float] = {}
    for i, item in enumerate(a.strip() for a in arglist.split(",") if a.strip()):
        key, eq, value = item.partition("=")
        if not eq:
            if i >= len(names):
                raise ValueError(f"surrogate {name!r} takes {len(names)} parameter(s), got more in {spec!r}")
            key, value = names[i], item
        try:
            kwargs[key.strip()] = float(value)
        except ValueError:
            raise ValueError(f"surrogate {spec!r}: parameter {key.strip()!r} is not a number") from None
    return make_surrogate(name, **kwargs)


def as_surrogate(value: Surrogate | str | Callable | None) -> Surrogate:
    """Normalise ``None`` (snntorch's default atan(alpha=2)), a name/spec string, a
    :class:`Surrogate` or a callable spike function into a :class:`Surrogate`."""
    if value is None:
        return Surrogate()
    if isinstance(value, Surrogate):
        return value
    if isinstance(value, str):
        return parse_surrogate(value)
    if callable(value):
        return Surrogate("custom", (), fn=value)
    raise TypeError(f"surrogate must be a name, a Surrogate or a callable, got {type(value).__name__}")


__all__ = ["SURROGATES", "Surrogate", "make_surrogate", "parse_surrogate", "as_surrogate"]
