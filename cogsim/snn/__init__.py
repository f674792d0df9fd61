"""Spiking neural network layers (docs/design.md §5.3): leaky and synaptic integrate-and-fire
neurons over a time axis, equal step for step to snntorch's neurons, with fused whole-sequence
paths, and the ``snn`` component that puts them in the residual stream."""
from cogsim.snn.lif import BACKENDS, RESETS, Leaky, lif_sequence
from cogsim.snn.surrogate import Surrogate, as_surrogate, make_surrogate, parse_surrogate
from cogsim.snn.synaptic import Synaptic, synaptic_sequence

__all__ = ["lif_sequence", "synaptic_sequence", "Leaky", "Synaptic", "Surrogate", "as_surrogate",
           "make_surrogate", "parse_surrogate", "RESETS", "BACKENDS"]
