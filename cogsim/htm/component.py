"""The ``htm`` component: episodic sequence memory over the token stream (docs/design.md §5.2.4).

Token codes feed a temporal memory that reads the rows position by position and learns online
(Hebbian, no gradients); it outputs a projected prediction of the next token (``out``) and the raw
anomaly of each token (``anomaly``, a signal for a workspace's salience). Causal: position t uses
tokens ≤ t only. One stream per row of the default batch; synapses connected at birth, so a passage
read once is predicted the second time (docs/design.md §5.2.4).
Under data parallel each rank reads its block of the global batch, global row g into stream g;
checkpoints take every stream from the rank that reads it (:meth:`HTMComponent.merge_rank_states`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from cogsim.bounds import Annotated, Checked, Count, FieldError, Range, Unit
from cogsim.component import Component, Context, Port, Sizes
from cogsim.errors import CogsimError
from cogsim.htm.temporal_memory import TemporalMemory, intra_op_threads
from cogsim.htm.token_encoder import TokenEncoder


@dataclass
class HTMParams(Checked):
    """YAML parameters of an ``htm`` node."""

    columns: Count = 1024
    cells_per_column: Count = 8
    active_columns: Count = 16  # columns of one token's code
    activation_threshold: int = 8
    min_threshold: Annotated[int, Range(ge=0)] = 6
    max_new_synapse_count: int = 12
    initial_permanence: Unit = 0.21
    connected_permanence: Unit = 0.2  # ≤ initial: connected at birth (one reading is remembered)
    permanence_increment: Unit = 0.1
    permanence_decrement: Unit = 0.1
    predicted_segment_decrement: Unit = 0.0
    max_segments_per_cell: Count = 8
    max_synapses_per_segment: Count = 24
    streams: Count = 8  # independent memories, one per row: match train.batch_size (rows beyond: chunks)
    learn: Literal["train", "always", "never"] = "train"
    readout: Literal["predicted_columns", "predictive_cells"] = "predicted_columns"
    seed: int = 0
    # torch: cogsim's TemporalMemory (its C kernel on a CPU, torch elsewhere; checkpointed);
    # htmcore: htm.core's C++ TM (if installed; not checkpointed)
    backend: Literal["torch", "htmcore"] = "torch"

    def check(self) -> None:
        if self.active_columns > self.columns:
            raise FieldError("active_columns", f"must be ≤ columns ({self.columns}), got {self.active_columns}")
        if self.min_threshold > self.activation_threshold:
            raise FieldError("min_threshold", f"must be ≤ activation_threshold ({self.activation_threshold}), "
                             f"got {self.min_threshold}")
        if self.backend == "htmcore":
            from cogsim.htm.backend_htmcore import available

            if not available():
                raise FieldError("backend", "'htmcore' needs htm.core's Python bindings (htm.bindings), "
                                 "which are not installed; use backend: torch")


class HTMComponent(Component):
    """Token stream → temporal memory → prediction vector and anomaly signal."""

    type_name = "htm"
    Params = HTMParams
    main_input = "ids"
    main_output = "out"
    residual = False
    description = "HTM episodic sequence memory: online temporal memory over tokens; prediction + anomaly"

    def __init__(self, params: HTMParams, sizes: Sizes) -> None:
        super().__init__(params, sizes)
        p = params
        self.encoder = TokenEncoder(sizes.vocab_size, p.columns, p.active_columns, seed=p.seed)
        memory = TemporalMemory
        if p.backend == "htmcore":
            from cogsim.htm.backend_htmcore import HTMCoreTemporalMemory as memory
        self.tm = memory(
            p.columns, cells_per_column=p.cells_per_column, activation_threshold=p.activation_threshold,
            initial_permanence=p.initial_permanence, connected_permanence=p.connected_permanence,
            min_threshold=p.min_threshold, max_new_synapse_count=p.max_new_synapse_count,
            permanence_increment=p.permanence_increment, permanence_decrement=p.permanence_decrement,
            predicted_segment_decrement=p.predicted_segment_decrement,
            max_segments_per_cell=p.max_segments_per_cell, max_synapses_per_segment=p.max_synapses_per_segment,
            seed=p.seed, streams=p.streams)
        self.features = p.columns if p.readout == "predicted_columns" else p.columns * p.cells_per_column
        self.proj = nn.EmbeddingBag(self.features, sizes.d_model, mode="sum")
        nn.init.normal_(self.proj.weight, std=0.02)
        self.bias = nn.Parameter(torch.zeros(sizes.d_model))
        self._cache: tuple[torch.Tensor, tuple[torch.Tensor, ...]] | None = None
        self._first_stream = 0  # data parallel: the stream of this rank's first row

    @classmethod
    def ports(cls, params: HTMParams, sizes: Sizes) -> tuple[dict[str, Port], dict[str, Port]]:
        inputs = {"ids": Port("ids", doc="token ids read by the memory")}
        outputs = {
            "out": Port("hidden", sizes.d_model, doc="projected prediction for the next token"),
            "anomaly": Port("signal", doc="raw anomaly of each token (fraction of unpredicted columns)"),
        }
        return inputs, outputs

    def learning(self) -> bool:
        mode = self.params.learn
        return mode == "always" or (mode == "train" and self.training)

    def online_state_reset(self) -> None:
        self.tm.reset()

    def set_batch_rows(self, first: int, count: int, total: int) -> None:
        if count == total:  # one process: rows beyond the streams are read in chunks
            self._first_stream = 0
            return
        if total > self.params.streams:
            raise CogsimError(f"htm: {self.params.streams} streams cannot serve a global batch of {total} rows "
                              "split across ranks (each stream must belong to one rank); set the node's "
                              "streams to at least train.batch_size")
        self._first_stream = first

    def per_rank_state(self) -> bool:
        return isinstance(self.tm, TemporalMemory)  # htm.core's memory is not checkpointed

    def merge_rank_states(self, states: list[dict[str, torch.Tensor]], rows: list[range]) -> dict[str, torch.Tensor]:
        owners = [next((r for r, block in enumerate(rows) if s in block), 0) for s in range(self.tm.streams)]
        merged = self.tm.merge_streams([{k[3:]: v for k, v in st.items() if k.startswith("tm.")} for st in states],
                                       owners)
        return {**states[0], **{f"tm.{k}": v for k, v in merged.items()}}

    def memory_estimate(self) -> dict[str, int]:
        return {"htm_synapses": self.tm.memory_bytes()} if isinstance(self.tm, TemporalMemory) else {}

    def forward(self, inputs: dict[str, Any], ctx: Context) -> dict[str, torch.Tensor]:
        ids = inputs["ids"]
        cached = self._cache
        if ctx.cycle > 0 and cached is not None and cached[0] is ids:
            anomaly, cols, counts = cached[1]  # the memory already read this batch on cycle 0
        else:
            anomaly, cols, counts = self._read(ids, learn=self.learning() and ctx.cycle == 0)
            self._cache = (ids, (anomaly, cols, counts))  # no autograd graph is kept here
        dev = self.bias.device
        b, t = ids.shape
        flat = counts.view(-1)
        offsets = torch.cumsum(flat, 0) - flat
        weights = torch.full((cols.numel(),), 1.0 / self.params.active_columns, device=dev)
        out = F.embedding_bag(cols.to(dev), self.proj.weight, offsets.to(dev), mode="sum",
                              per_sample_weights=weights)
        out = out.view(b, t, -1) + self.bias
        anomaly = anomaly.to(dev)
        if ctx.recording:
            ctx.record("anomaly", anomaly)
            ctx.record("predicted", lambda: counts.float().to(dev))
        return {"out": out, "anomaly": anomaly}

    @torch.no_grad()
    def _read(self, ids: torch.Tensor, learn: bool):
        """Run the memory over the rows; returns anomaly [B, T], and the readout features as a
        ragged list: feature ids ``cols`` ordered by (row, position), ``counts`` [B, T]."""
        dev = self.tm.device
        b, t = ids.shape
        codes = self.encoder.columns(ids.to(self.encoder.table.device)).to(dev)  # [B, T, A]
        anomaly = torch.zeros(b, t, device=dev)
        with intra_op_threads(1):
            feats = self._steps(codes, anomaly, learn)
        mask = torch.cat(feats, 0)  # [B, T, F]
        counts = mask.sum(-1)
        cols = mask.view(b * t, -1).nonzero()[:, 1]
        return anomaly, cols, counts

    def _steps(self, codes, anomaly, learn: bool) -> list[torch.Tensor]:
        """Rows in chunks of ``streams``, positions in order; features [rows, T, F] per chunk."""
        tm, S, C = self.tm, self.tm.streams, self.params.columns
        dev = tm.device
        b, t = anomaly.shape
        feats = []
        for start in range(0, b, S):
            rows = min(S, b - start)
            a = self._first_stream if self._first_stream + b <= S else 0  # this rank's streams
            x = torch.zeros(t, S, C, dtype=torch.bool, device=dev)
            x[:, a:a + rows].scatter_(2, codes[start:start + rows].transpose(0, 1), True)
            tm.reset()
            chunk = []
            for pos in range(t):
                anomaly[start:start + rows, pos] = tm.compute(x[pos], learn=learn)[a:a + rows]
                chunk.append(tm.predicted_columns()[a:a + rows] if self.params.readout == "predicted_columns"
                             else tm.predictive_cells[a:a + rows])
            feats.append(torch.stack(chunk, 1))  # [rows, T, F]
        tm.reset()
        return feats
