"""The optional htm.core backend (skipped unless htm.bindings imports): same interface, and on the
repeating sequence it shows the same signature as the torch TM."""
from __future__ import annotations

import pytest
import torch

from cogsim.htm import backend_htmcore


def test_availability_is_reported_without_importing_errors():
    assert backend_htmcore.available() in (True, False)
    if not backend_htmcore.available():
        with pytest.raises(ImportError, match="htm.bindings"):
            backend_htmcore.HTMCoreTemporalMemory(64)


@pytest.mark.skipif(not backend_htmcore.available(), reason="htm.core (htm.bindings) is not installed")
def test_htmcore_backend_learns_a_sequence_like_the_torch_tm():
    g = torch.Generator().manual_seed(0)
    seq = torch.zeros(4, 2, 128, dtype=torch.bool)
    for i in range(4):
        for s in range(2):
            seq[i, s, torch.randperm(128, generator=g)[:16]] = True
    tm = backend_htmcore.HTMCoreTemporalMemory(128, cells_per_column=8, activation_threshold=10,
                                               min_threshold=8, max_new_synapse_count=16, streams=2)
    for rep in range(6):
        tm.reset()
        anomalies = [tm.compute(seq[i]) for i in range(4)]
    assert torch.equal(anomalies[0], torch.ones(2))
    assert all(torch.equal(a, torch.zeros(2)) for a in anomalies[1:])
    tm.reset()
    tm.compute(seq[0])
    assert torch.equal(tm.predicted_columns(), seq[1])
