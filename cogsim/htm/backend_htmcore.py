"""Optional backend: htm.core's C++ TemporalMemory (``htm.bindings``) behind the same interface as
:class:`cogsim.htm.temporal_memory.TemporalMemory`, one htm.core TM per stream, stepped in a loop.

htm.core is AGPL and not installable from the package registries here; this module only imports it
when used (``available()`` tells whether it can be). Useful to compare numbers with the reference
implementation. Its state is htm.core's own: it is not part of ``state_dict``.
"""
from __future__ import annotations

import torch


def available() -> bool:
    try:
        import htm.bindings.algorithms  # noqa: F401
    except ImportError:
        return False
    return True


class HTMCoreTemporalMemory:
    """``compute(active_columns [streams, columns] bool, learn)`` → raw anomaly [streams], like the
    torch TemporalMemory; stream ``s`` uses seed ``seed + s``."""

    def __init__(self, num_columns: int, cells_per_column: int = 32, activation_threshold: int = 13,
                 initial_permanence: float = 0.21, connected_permanence: float = 0.5, min_threshold: int = 10,
                 max_new_synapse_count: int = 20, permanence_increment: float = 0.1,
                 permanence_decrement: float = 0.1, predicted_segment_decrement: float = 0.0,
                 max_segments_per_cell: int = 255, max_synapses_per_segment: int = 255, seed: int = 42,
                 streams: int = 1, device=None) -> None:
        try:
            from htm.bindings.algorithms import TemporalMemory as _TM
            from htm.bindings.sdr import SDR
        except ImportError as e:
            raise ImportError("the htmcore backend needs htm.core's Python bindings (htm.bindings)") from e
        self._SDR = SDR
        self.num_columns, self.cells_per_column, self.streams = num_columns, cells_per_column, streams
        self.num_cells = num_columns * cells_per_column
        self.device = torch.device(device or "cpu")
        self._tms = [_TM(columnDimensions=(num_columns,), cellsPerColumn=cells_per_column,
                         activationThreshold=activation_threshold, initialPermanence=initial_permanence,
                         connectedPermanence=connected_permanence, minThreshold=min_threshold,
                         maxNewSynapseCount=max_new_synapse_count, permanenceIncrement=permanence_increment,
                         permanenceDecrement=permanence_decrement,
                         predictedSegmentDecrement=predicted_segment_decrement, seed=seed + s,
                         maxSegmentsPerCell=max_segments_per_cell, maxSynapsesPerSegment=max_synapses_per_segment)
                     for s in range(streams)]
        self._active = torch.zeros(streams, self.num_cells, dtype=torch.bool)
        self._winner = torch.zeros_like(self._active)
        self._predictive = torch.zeros_like(self._active)

    @property
    def active_cells(self) -> torch.Tensor:
        return self._active.to(self.device)

    @property
    def winner_cells(self) -> torch.Tensor:
        return self._winner.to(self.device)

    @property
    def predictive_cells(self) -> torch.Tensor:
        return self._predictive.to(self.device)

    def predicted_columns(self) -> torch.Tensor:
        return self.predictive_cells.view(self.streams, self.num_columns, self.cells_per_column).any(2)

    def reset(self) -> None:
        for tm in self._tms:
            tm.reset()
        self._active.zero_()
        self._winner.zero_()
        self._predictive.zero_()

    def compute(self, active_columns: torch.Tensor, learn: bool = True) -> torch.Tensor:
        if tuple(active_columns.shape) != (self.streams, self.num_columns):
            raise ValueError(f"active_columns must have shape [{self.streams}, {self.num_columns}], "
                             f"got {list(active_columns.shape)}")
        cols = active_columns.detach().to("cpu", torch.bool)
        anomaly = torch.zeros(self.streams)
        for s, tm in enumerate(self._tms):
            sdr = self._SDR(self.num_columns)
            sdr.sparse = cols[s].nonzero().squeeze(1).tolist()
            tm.compute(sdr, learn)
            anomaly[s] = tm.anomaly
            tm.activateDendrites(learn)  # predictions for the next step (reused by the next compute)
            for target, cells in ((self._active, tm.getActiveCells()), (self._winner, tm.getWinnerCells()),
                                  (self._predictive, tm.getPredictiveCells())):
                target[s].zero_()
                target[s, torch.as_tensor(list(cells.sparse), dtype=torch.long)] = True
        return anomaly.to(self.device)
