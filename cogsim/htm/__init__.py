"""Episodic sequence memory: HTM (spatial pooler, temporal memory, encoders, anomaly), in torch.

The algorithms follow htm.core's semantics (DESIGN §5.2) and run batched over independent streams
on CPU or GPU. ``cogsim.htm.component`` wires them into architectures as the ``htm`` component.
"""
from cogsim.htm.spatial_pooler import SpatialPooler
from cogsim.htm.temporal_memory import TemporalMemory, intra_op_threads
from cogsim.htm.token_encoder import TokenEncoder

__all__ = ["SpatialPooler", "TemporalMemory", "TokenEncoder", "intra_op_threads"]
