"""Episodic sequence memory: HTM (encoders, spatial pooler, temporal memory and its storage), in torch.

The algorithms follow htm.core's semantics (docs/design.md §5.2) and run batched over independent
streams on CPU or GPU. ``cogsim.htm.component`` wires them into architectures as the ``htm``
component; the anomaly application on time series is :mod:`cogsim.anomaly`.
"""
from cogsim.htm.spatial_pooler import SpatialPooler
from cogsim.htm.temporal_memory import TemporalMemory, intra_op_threads
from cogsim.htm.token_encoder import TokenEncoder

__all__ = ["SpatialPooler", "TemporalMemory", "TokenEncoder", "intra_op_threads"]
