"""The ``snn`` component: a spiking layer in the residual stream (docs/design.md §5.3).

The hidden state is normalised and projected to input currents of ``neurons`` spiking neurons, which
integrate them for ``steps`` steps per token; the spike rate (or the mean membrane) is projected back
to d_model as the residual delta.

- ``mode: per_token``: every token is its own short spike train (membrane starts at rest at each
  token; the time axis is the ``steps`` axis).
- ``mode: sequence``: the membrane is carried across token positions (``steps`` sub-steps per
  token), making the layer a causal temporal filter over the text: the output at position t
  depends on tokens ≤ t only.

``beta: [low, high]`` gives each neuron its own decay, time constants 1/(1 − β) log-spaced between
those of ``low`` and ``high``: a bank of integrators over many time scales, from which the next
layer can read how much of something happened over a span of positions (one decay integrates over
one time scale only; docs/design.md §5.3).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from cogsim.bounds import Checked, Count, FieldError, Positive, Unit
from cogsim.component import Component, Context, Port, Sizes
from cogsim.snn.lif import Leaky
from cogsim.snn.surrogate import parse_surrogate
from cogsim.snn.synaptic import Synaptic

Backend = Literal["auto", "native", "torch", "compile", "parallel", "loop"]


@dataclass
class SNNParams(Checked):
    """YAML parameters of an ``snn`` node."""

    neurons: Count = 256  # spiking neurons in the layer
    steps: Count = 4  # spiking steps per token
    mode: Literal["per_token", "sequence"] = "per_token"
    neuron: Literal["leaky", "synaptic"] = "leaky"  # first-order LIF or with a synaptic current
    # membrane decay per sub-step (initial value; one per neuron), or [low, high]: per-neuron decays
    # with time constants 1 / (1 − β) log-spaced from low's to high's
    beta: Unit | tuple[Unit, Unit] = 0.9
    learn_beta: bool = True
    alpha: Unit = 0.8  # synaptic current decay (neuron: synaptic)
    learn_alpha: bool = True
    threshold: Positive = 1.0
    learn_threshold: bool = False
    reset: Literal["subtract", "zero", "none"] = "subtract"
    # mean spikes or mean membrane over the steps; "average": the membrane times (1 − β) (and (1 − α)
    # for synaptic neurons), each neuron's leaky average of its input, on one scale whatever its decay
    readout: Literal["rate", "membrane", "average"] = "rate"
    surrogate: str = "atan"  # snntorch surrogate, e.g. "atan(alpha=2)", "fast_sigmoid(slope=25)"
    fused: bool | Backend = True  # True: fastest exact path; false: per-step loop; or a backend name

    def check(self) -> None:
        if isinstance(self.beta, (tuple, list)):
            if len(self.beta) != 2 or not self.beta[0] <= self.beta[1] < 1:
                raise FieldError("beta", f"a range must be [low, high] with low ≤ high < 1 (a time constant "
                                         f"1 / (1 − β) needs β < 1), got {list(self.beta)}")
        try:
            parse_surrogate(self.surrogate)
        except ValueError as e:
            raise FieldError("surrogate", str(e)) from None
        if self.fused == "parallel" and self.reset != "none":
            raise FieldError("fused", "'parallel' (the exact parallel form) needs reset: none")


class SNNComponent(Component):
    """Spiking layer: currents → LIF (or synaptic) neurons → rate/membrane read-out → residual delta."""

    type_name = "snn"
    Params = SNNParams
    description = ("spiking neurons (snntorch-exact LIF, fused kernels): per-token spike trains or a causal "
                   "temporal layer over the text")

    @classmethod
    def ports(cls, params: SNNParams, sizes: Sizes):
        d = sizes.d_model
        return ({"x": Port("hidden", d, doc="hidden state in")},
                {"out": Port("hidden", d, doc="residual delta"),
                 "rate": Port("signal", doc="mean firing rate of the layer per position [B, T]")})

    def __init__(self, params: SNNParams, sizes: Sizes) -> None:
        super().__init__(params, sizes)
        d, n = sizes.d_model, params.neurons
        self.norm = nn.RMSNorm(d)
        self.inp = nn.Linear(d, n)
        self.out = nn.Linear(n, d, bias=False)
        nn.init.zeros_(self.out.weight)  # the layer starts as the identity of the residual stream
        beta = decays(params.beta, n)
        common = dict(neurons=n, learn_beta=params.learn_beta, learn_threshold=params.learn_threshold,
                      reset=params.reset, surrogate=parse_surrogate(params.surrogate), fused=params.fused)
        if params.neuron == "leaky":
            self.lif = Leaky(beta, params.threshold, **common)
        else:
            self.lif = Synaptic(params.alpha, beta, params.threshold, learn_alpha=params.learn_alpha, **common)

    def forward(self, inputs: dict, ctx: Context) -> dict[str, torch.Tensor]:
        x = inputs["x"]
        b, t, _ = x.shape
        s, n, p = self.params.steps, self.params.neurons, self.params
        current = self.inp(self.norm(x)).float()  # neuron dynamics in float32 even under autocast
        if p.mode == "per_token":  # time = steps, batch = (B, T)
            drive = current.reshape(1, b * t, n).expand(s, b * t, n)
        else:  # time = (T, steps), batch = B: the membrane flows along the text
            drive = current.transpose(0, 1).unsqueeze(1).expand(t, s, b, n).reshape(t * s, b, n)
        spikes, *_, mem = self.lif(drive)
        if p.mode == "per_token":  # [B, T, steps, neurons] views of the neuron outputs
            grid = lambda z: z.view(s, b, t, n).permute(1, 2, 0, 3)  # noqa: E731
        else:
            grid = lambda z: z.view(t, s, b, n).permute(2, 0, 1, 3)  # noqa: E731
        read = grid(spikes if p.readout == "rate" else mem).mean(2)
        if p.readout == "average":
            read = read * self.gain()
        rate = grid(spikes).mean((2, 3))  # differentiable through the surrogate
        if ctx.recording:
            ctx.record("spikes", lambda: grid(spikes).to(torch.uint8).contiguous())  # [B, T, steps, neurons]
            ctx.record("firing_rate", lambda: spikes.detach().float().mean(tuple(range(spikes.dim() - 1))))
            ctx.record("rate", rate)
        return {"out": self.out(read.to(x.dtype)), "rate": rate.to(x.dtype)}

    def gain(self) -> torch.Tensor:
        """Per neuron, the steady-state membrane of a unit input current, inverted: (1 − β)(1 − α)."""
        gain = 1 - self.lif.beta.clamp(0, 1)
        if self.params.neuron == "synaptic":
            gain = gain * (1 - self.lif.alpha.clamp(0, 1))
        return gain

    def extra_repr(self) -> str:
        p = self.params
        return f"mode={p.mode}, neuron={p.neuron}, neurons={p.neurons}, steps={p.steps}, readout={p.readout}"


def decays(beta: float | tuple[float, float], neurons: int) -> float | torch.Tensor:
    """``beta`` as given, or for ``(low, high)`` one decay per neuron, time constants 1 / (1 − β)
    log-spaced from 1 / (1 − low) to 1 / (1 − high)."""
    if not isinstance(beta, (tuple, list)):
        return beta
    low, high = (math.log(1 / (1 - b)) for b in beta)
    return 1 - torch.exp(-torch.linspace(low, high, neurons, dtype=torch.float64)).float()


__all__ = ["SNNComponent", "SNNParams", "decays"]
