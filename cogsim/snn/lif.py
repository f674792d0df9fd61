"""Leaky integrate-and-fire neurons over a leading time axis, step-for-step equal to ``snntorch.Leaky``
(1.0, ``reset_delay=True``; the update rule is in docs/design.md §5.3).

State is explicit: pass ``mem0`` (zeros by default) and read ``membrane[-1]``; nothing is kept on a
class or module.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from cogsim.snn import fused as _fused
from cogsim.snn import native
from cogsim.snn.surrogate import Surrogate, as_surrogate

RESETS = ("subtract", "zero", "none")
#: ``fused`` values: True = "auto" (fastest correct path), False = "loop" (per-step autograd graph).
BACKENDS = ("auto", "native", "torch", "compile", "parallel", "loop")


def resolve_backend(fused: bool | str, x: torch.Tensor, reset: str) -> str:
    """Pick the implementation for ``fused`` (True/False or a name from :data:`BACKENDS`)."""
    if reset not in RESETS:
        raise ValueError(f"reset must be one of {', '.join(RESETS)}, got {reset!r}")
    name = ("auto" if fused else "loop") if isinstance(fused, bool) else fused
    if name not in BACKENDS:
        raise ValueError(f"fused must be true, false or one of {', '.join(BACKENDS)}, got {fused!r}")
    if name == "parallel" and reset != "none":
        raise ValueError("fused='parallel' (the exact parallel form) needs reset='none'")
    if name == "auto":
        if native.supports(x):
            return "native"
        return "parallel" if reset == "none" else "torch"
    return name


def as_param(value, like: torch.Tensor, name: str, clamp: bool = False) -> torch.Tensor:
    """``value`` (number or tensor) as a tensor on ``like``'s device/dtype, broadcastable to one time
    step ``like.shape[1:]``; a Python number becomes a default-dtype tensor first, as in snntorch."""
    t = value if isinstance(value, torch.Tensor) else torch.as_tensor(value)
    shape = like.shape[1:]
    try:
        ok = torch.broadcast_shapes(t.shape, shape) == shape
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(f"{name} of shape {tuple(t.shape)} does not broadcast to the neuron shape {tuple(shape)}")
    t = t.to(device=like.device, dtype=like.dtype)
    return t.clamp(0, 1) if clamp else t


def flat(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Broadcast a per-neuron tensor to one time step of ``like`` and flatten it to [M] (autograd sums
    gradients back to the original shape)."""
    return t.expand(like.shape[1:]).reshape(-1).contiguous()


def decay_arg(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A decay for the parallel scan: [1] when shared by all neurons (matrix-product scan), else [M]."""
    return t.reshape(1) if t.numel() == 1 else flat(t, like)


def initial_state(value: torch.Tensor | None, like: torch.Tensor, name: str) -> torch.Tensor:
    if value is None:
        return torch.zeros(like.shape[1:], dtype=like.dtype, device=like.device)
    return as_param(value, like, name).expand(like.shape[1:])


# ---- the per-step loop (snntorch's graph, also the body torch.compile fuses) ----------------------
def leaky_loop(x: torch.Tensor, beta: torch.Tensor, thr: torch.Tensor, mem0: torch.Tensor, reset: str,
               surrogate: Surrogate) -> tuple[torch.Tensor, torch.Tensor]:
    mem, spikes, mems = mem0, [], []
    for t in range(x.shape[0]):
        r = (mem - thr > 0).to(x.dtype)  # == snntorch's detached mem_reset
        if reset == "subtract":
            mem = beta * mem + x[t] - r * thr
        elif reset == "zero":
            mem = beta * ((1 - r) * mem) + x[t]
        else:
            mem = beta * mem + x[t]
        spikes.append(surrogate.spike(mem - thr))
        mems.append(mem)
    return torch.stack(spikes), torch.stack(mems)


_COMPILED: dict[tuple, Callable] = {}


def compiled(loop: Callable, *static) -> Callable:
    """``torch.compile`` of ``loop`` with its trailing non-tensor arguments (reset, surrogate, …) bound,
    built once per process and combination (opt-in: the first call compiles, which takes a while)."""
    key = (loop, *static)
    if key not in _COMPILED:
        def bound(*tensors):
            return loop(*tensors, *static)
        _COMPILED[key] = torch.compile(bound, dynamic=False)
    return _COMPILED[key]


def lif_sequence(current: torch.Tensor, *, beta, threshold=1.0, reset: str = "subtract",
                 fused: bool | str = True, surrogate: Surrogate | str | Callable | None = None,
                 mem0: torch.Tensor | None = None, graded_spikes_factor=1.0,
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Run a leaky integrate-and-fire layer over ``current`` [T, ...] from membrane ``mem0``.

    ``beta``, ``threshold``: numbers or tensors broadcastable to ``current.shape[1:]`` (e.g. one per
    neuron); tensors that require grad receive gradients (learnable decay/threshold).
    ``fused``: True picks the fastest exact path (native kernels on CPU, else a whole-sequence torch
    autograd function; reset "none" off-CPU uses the parallel scan); False steps a per-step autograd
    graph like snntorch; or name one of "native", "torch", "compile", "parallel", "loop".
    Returns ``(spikes, membrane)``, both [T, ...]; spikes are scaled by ``graded_spikes_factor``.
    """
    if current.dim() < 1 or current.shape[0] == 0:
        raise ValueError(f"current must have a non-empty leading time axis, got shape {tuple(current.shape)}")
    backend = resolve_backend(fused, current, reset)
    surrogate = as_surrogate(surrogate)
    b = as_param(beta, current, "beta", clamp=True)
    th = as_param(threshold, current, "threshold")
    m0 = initial_state(mem0, current, "mem0")
    if backend == "loop":
        spikes, mem = leaky_loop(current, b, th, m0, reset, surrogate)
    elif backend == "compile":
        spikes, mem = compiled(leaky_loop, reset, surrogate)(current, b, th, m0)
    else:
        x = current.reshape(current.shape[0], -1).contiguous()
        if backend == "parallel":
            spikes, mem = _fused.ParallelLeaky.apply(x, decay_arg(b, current), flat(th, current),
                                                     flat(m0, current), surrogate)
        else:
            spikes, mem = _fused.LeakySequence.apply(x, flat(b, current), flat(th, current), flat(m0, current),
                                                     reset, surrogate, backend)
        spikes, mem = spikes.view_as(current), mem.view_as(current)
    if not (isinstance(graded_spikes_factor, (int, float)) and graded_spikes_factor == 1):
        spikes = spikes * graded_spikes_factor
    return spikes, mem


def register_neuron_params(module: nn.Module, neurons: int | None, **specs) -> None:
    """Attach ``name=(value, learnable)`` to ``module`` as a Parameter or a buffer; a scalar becomes
    one value per neuron when ``neurons`` is given."""
    for name, (value, learn) in specs.items():
        t = torch.as_tensor(value, dtype=torch.get_default_dtype()).clone()
        if neurons is not None and t.dim() == 0:
            t = t.expand(neurons).clone()
        if learn:
            setattr(module, name, nn.Parameter(t))
        else:
            module.register_buffer(name, t)


class Leaky(nn.Module):
    """A layer of leaky neurons with its own (optionally learnable, per-neuron) decay and threshold.

    ``forward(current [T, ..., n], mem0=None) -> (spikes, membrane)``; no hidden state is stored.
    """

    def __init__(self, beta: float | torch.Tensor = 0.9, threshold: float | torch.Tensor = 1.0, *,
                 neurons: int | None = None, learn_beta: bool = False, learn_threshold: bool = False,
                 reset: str = "subtract", surrogate: Surrogate | str | Callable | None = None,
                 fused: bool | str = True) -> None:
        super().__init__()
        if reset not in RESETS:
            raise ValueError(f"reset must be one of {', '.join(RESETS)}, got {reset!r}")
        self.reset, self.fused, self.surrogate = reset, fused, as_surrogate(surrogate)
        register_neuron_params(self, neurons, beta=(beta, learn_beta), threshold=(threshold, learn_threshold))

    def forward(self, current: torch.Tensor, mem0: torch.Tensor | None = None):
        return lif_sequence(current, beta=self.beta, threshold=self.threshold, reset=self.reset,
                            fused=self.fused, surrogate=self.surrogate, mem0=mem0)

    def extra_repr(self) -> str:
        return f"neurons={tuple(self.beta.shape)}, reset={self.reset}, surrogate={self.surrogate.describe()}"


__all__ = ["lif_sequence", "leaky_loop", "Leaky", "RESETS", "BACKENDS", "resolve_backend"]
