"""Second-order (synaptic current) LIF neurons, step-for-step equal to ``snntorch.Synaptic`` (1.0);
the update rule, including its different "zero" reset, is in docs/design.md §5.3.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from cogsim.snn import fused as _fused
from cogsim.snn.lif import (RESETS, as_param, compiled, decay_arg, flat, initial_state, register_neuron_params,
                            resolve_backend)
from cogsim.snn.surrogate import Surrogate, as_surrogate


def synaptic_loop(x, alpha, beta, thr, syn0, mem0, reset: str, surrogate: Surrogate):
    """The per-step graph (snntorch's order of operations)."""
    syn, mem, spikes, syns, mems = syn0, mem0, [], [], []
    for t in range(x.shape[0]):
        r = (mem - thr > 0).to(x.dtype)
        syn = alpha * syn + x[t]
        base = beta * mem + syn
        if reset == "subtract":
            mem = base - r * thr
        elif reset == "zero":
            mem = base - base * r
        else:
            mem = base
        spikes.append(surrogate.spike(mem - thr))
        syns.append(syn)
        mems.append(mem)
    return torch.stack(spikes), torch.stack(syns), torch.stack(mems)


def synaptic_sequence(current: torch.Tensor, *, alpha, beta, threshold=1.0, reset: str = "subtract",
                      fused: bool | str = True, surrogate: Surrogate | str | Callable | None = None,
                      syn0: torch.Tensor | None = None, mem0: torch.Tensor | None = None,
                      graded_spikes_factor=1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run synaptic neurons over ``current`` [T, ...]; returns ``(spikes, syn, membrane)`` [T, ...].

    Arguments as :func:`cogsim.snn.lif.lif_sequence`, plus the synaptic decay ``alpha`` and its
    initial current ``syn0``.
    """
    if current.dim() < 1 or current.shape[0] == 0:
        raise ValueError(f"current must have a non-empty leading time axis, got shape {tuple(current.shape)}")
    backend = resolve_backend(fused, current, reset)
    surrogate = as_surrogate(surrogate)
    a = as_param(alpha, current, "alpha", clamp=True)
    b = as_param(beta, current, "beta", clamp=True)
    th = as_param(threshold, current, "threshold")
    s0, m0 = initial_state(syn0, current, "syn0"), initial_state(mem0, current, "mem0")
    if backend == "loop":
        spikes, syn, mem = synaptic_loop(current, a, b, th, s0, m0, reset, surrogate)
    elif backend == "compile":
        spikes, syn, mem = compiled(synaptic_loop, reset, surrogate)(current, a, b, th, s0, m0)
    else:
        x = current.reshape(current.shape[0], -1).contiguous()
        args = (x, flat(a, current), flat(b, current), flat(th, current), flat(s0, current), flat(m0, current))
        if backend == "parallel":
            args = (x, decay_arg(a, current), decay_arg(b, current), *args[3:])
            spikes, syn, mem = _fused.ParallelSynaptic.apply(*args, surrogate)
        else:
            spikes, syn, mem = _fused.SynapticSequence.apply(*args, reset, surrogate, backend)
        spikes, syn, mem = spikes.view_as(current), syn.view_as(current), mem.view_as(current)
    if not (isinstance(graded_spikes_factor, (int, float)) and graded_spikes_factor == 1):
        spikes = spikes * graded_spikes_factor
    return spikes, syn, mem


class Synaptic(nn.Module):
    """A layer of synaptic neurons with its own (optionally learnable, per-neuron) α, β and threshold.

    ``forward(current [T, ..., n], syn0=None, mem0=None) -> (spikes, syn, membrane)``; stateless.
    """

    def __init__(self, alpha: float | torch.Tensor = 0.8, beta: float | torch.Tensor = 0.9,
                 threshold: float | torch.Tensor = 1.0, *, neurons: int | None = None, learn_alpha: bool = False,
                 learn_beta: bool = False, learn_threshold: bool = False, reset: str = "subtract",
                 surrogate: Surrogate | str | Callable | None = None, fused: bool | str = True) -> None:
        super().__init__()
        if reset not in RESETS:
            raise ValueError(f"reset must be one of {', '.join(RESETS)}, got {reset!r}")
        self.reset, self.fused, self.surrogate = reset, fused, as_surrogate(surrogate)
        register_neuron_params(self, neurons, alpha=(alpha, learn_alpha), beta=(beta, learn_beta),
                               threshold=(threshold, learn_threshold))

    def forward(self, current: torch.Tensor, syn0: torch.Tensor | None = None, mem0: torch.Tensor | None = None):
        return synaptic_sequence(current, alpha=self.alpha, beta=self.beta, threshold=self.threshold,
                                 reset=self.reset, fused=self.fused, surrogate=self.surrogate, syn0=syn0,
                                 mem0=mem0)

    def extra_repr(self) -> str:
        return f"neurons={tuple(self.beta.shape)}, reset={self.reset}, surrogate={self.surrogate.describe()}"


__all__ = ["synaptic_sequence", "synaptic_loop", "Synaptic"]
