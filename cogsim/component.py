"""The component contract: what every node of an architecture graph is (docs/design.md §4).

A component is an ``nn.Module`` registered under a type name. It declares typed ports, builds itself
from validated parameters plus the model's global sizes, and maps a dict of input tensors to a dict
of output tensors. Memory systems subclass :class:`Component` and know nothing of the graph layer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping

import torch
from torch import nn

#: Port kinds and the tensor each carries. ``size`` is the last dimension where there is one.
PORT_KINDS = {
    "hidden": "float [B, T, size]",
    "ids": "long [B, T]",
    "signal": "float [B, T]",
    "logits": "float [B, T, size]",
}


@dataclass(frozen=True)
class Port:
    """A typed input or output of a component."""

    kind: str
    size: int | None = None
    required: bool = True
    multi: bool = False  # several edges may arrive; the component receives a list
    doc: str = ""

    def __post_init__(self) -> None:
        if self.kind not in PORT_KINDS:
            raise ValueError(f"unknown port kind {self.kind!r}; expected one of {sorted(PORT_KINDS)}")

    def describe(self) -> str:
        return f"{self.kind}[{self.size}]" if self.size is not None else self.kind


@dataclass(frozen=True)
class Sizes:
    """Global sizes every component may read (resolved before building)."""

    d_model: int
    n_heads: int
    seq_len: int
    vocab_size: int
    window: int = 0  # default attention window of every block (0: full causal attention)


@dataclass
class Context:
    """What the model tells a component about the current forward pass."""

    cycle: int = 0
    cycles: int = 1
    recorder: Any = None  # cogsim.trace.Recorder or None
    node: str = ""  # set by the model before each call

    @property
    def recording(self) -> bool:
        return self.recorder is not None and self.recorder.wants(self.node)

    def record(self, name: str, value: torch.Tensor | Callable[[], torch.Tensor]) -> None:
        """Publish a trace tensor (or a thunk computing it) when recording is on for this node."""
        if self.recording:
            self.recorder.add(self.node, name, value() if callable(value) else value, cycle=self.cycle)


class Component(nn.Module):
    """Base class of graph nodes.

    Subclasses set ``type_name`` and ``Params`` (a dataclass whose annotated fields are the YAML
    parameters; fields without defaults are required; bounds sit on the fields, see
    :mod:`cogsim.bounds`), implement :meth:`ports` and :meth:`forward`.

    When ``residual`` is true the main output is a delta: the model adds it to the main input and
    publishes both the sum (port ``out``) and the delta (port ``delta``).
    """

    type_name: ClassVar[str] = ""
    Params: ClassVar[type] = type("Params", (), {})
    main_input: ClassVar[str | None] = "x"
    main_output: ClassVar[str | None] = "out"
    residual: ClassVar[bool] = True
    description: ClassVar[str] = ""

    def __init__(self, params: Any, sizes: Sizes) -> None:
        super().__init__()
        self.params = params
        self.sizes = sizes

    @classmethod
    def ports(cls, params: Any, sizes: Sizes) -> tuple[dict[str, Port], dict[str, Port]]:
        """(inputs, outputs) this component offers for the given parameters."""
        d = sizes.d_model
        return {"x": Port("hidden", d)}, {"out": Port("hidden", d)}

    def forward(self, inputs: dict[str, Any], ctx: Context) -> dict[str, torch.Tensor]:  # noqa: D401
        raise NotImplementedError

    # ---- the node in its graph (defaults do nothing) ---------------------------------------------
    @classmethod
    def check_plan(cls, name: str, plan: Any) -> None:
        """Check node ``name`` against the whole graph when the plan is built. ``plan`` is a
        :class:`cogsim.graph.build.Plan`: every node's class and parameters, and per node and input
        port the edges feeding it. Raise ``ValueError`` to reject the node: the user sees one line
        naming the node's file:line (the parameter's line for a :class:`cogsim.bounds.FieldError`)."""

    def bind(self, name: str, plan: Any, nodes: Mapping[str, "Component"]) -> None:
        """Called once every node of ``plan`` is built (``nodes``: name → component), to take what
        this node needs from the graph or from other nodes, e.g. a weight it shares."""

    # ---- optional hooks (defaults do nothing) -------------------------------------------------
    def prefetch(self, ids: torch.Tensor) -> None:
        """Start fetching whatever the next forward on ``ids`` will need (Engram rows)."""

    def sparse_parameters(self) -> list[nn.Parameter]:
        """Parameters updated by the component's own sparse optimizer (excluded from AdamW)."""
        return []

    def sparse_step(self, lr: float) -> None:
        """Apply the sparse optimizer to the rows touched since the last step; ``lr`` is the base
        learning rate of the schedule (the component applies its own multiplier)."""

    def sparse_state_dict(self) -> dict[str, torch.Tensor]:
        """Sparse optimizer state (and out-of-module tables) to store in checkpoints."""
        return {}

    def load_sparse_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`sparse_state_dict` returned."""

    def memory_estimate(self) -> dict[str, int]:
        """Bytes held outside ordinary dense parameters, e.g. ``{"tables": n}``, for ``cogsim check``."""
        return {}

    def attach_tokenizer(self, tokenizer) -> None:
        """Learn the run's tokenizer (a ``tokenizers.Tokenizer``), e.g. to compress its vocabulary."""

    def attach_run_dir(self, path) -> None:
        """Learn the run folder, e.g. to keep memory-mapped tables there."""

    def online_state_reset(self) -> None:
        """Forget online state (HTM synapses are kept; sequence context is cleared)."""

    # ---- data parallel (cogsim.train.distributed); defaults suit stateless components ----------
    def set_batch_rows(self, first: int, count: int, total: int) -> None:
        """This process reads ``count`` rows from row ``first`` of every global batch of ``total``
        rows (its share under data parallel; all of them otherwise)."""

    def per_rank_state(self) -> bool:
        """Whether ranks hold different non-parameter state (merged by :meth:`merge_rank_states`)."""
        return False

    def merge_rank_states(self, states: list[dict[str, torch.Tensor]],
                          rows: list[range]) -> dict[str, torch.Tensor]:
        """One state dict from every rank's (``rows[r]``: the batch rows rank r read)."""
        return states[0]

    def row_shards(self) -> dict[str, tuple[torch.Tensor, int, int]]:
        """Tensors split by rows across ranks, saved one file per rank: name → (this rank's rows,
        first global row, global row count)."""
        return {}

    def load_row_shards(self, read: Callable[[str, int, int], torch.Tensor]) -> None:
        """Restore :meth:`row_shards` at any rank count: ``read(name, start, stop)`` returns global
        rows [start, stop) of a saved tensor."""

    def gather_rows_to_main(self) -> None:
        """Collective: rank 0 takes every row of sharded tables (to run alone after training)."""
