"""The ``engram`` component: hashed n-gram memory read into the residual stream (docs/design.md §5.1).

Ids are compressed and hashed into one table (placement ``device``, ``host``, ``mmap``, or
``sharded`` across data-parallel ranks); the rows are fused into the hidden state by
:mod:`cogsim.engram.layer`. The table is not an ``nn.Parameter``: its row gradients go to a row-wise
optimizer in :meth:`EngramComponent.sparse_step`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from cogsim.bounds import Annotated, Checked, Count, FieldError, Positive, Range
from cogsim.component import Component, Context, Port, Sizes
from cogsim.engram.hashing import EngramConfigError, NgramHashMapping
from cogsim.engram.layer import EngramFusion
from cogsim.engram.exchange import sum_rows
from cogsim.engram.node_shared import NodeSharedTable, node_ranks
from cogsim.engram.prefetch import FetchedRows, RowPrefetcher
from cogsim.engram.sharded import ShardedTable
from cogsim.engram.sparse_optim import make_optimizer
from cogsim.engram.tables import EngramTable
from cogsim.errors import CogsimError


@dataclass
class EngramParams(Checked):
    """YAML parameters of an ``engram`` node (defaults fit a small CPU model, d_model ~256)."""

    max_ngram_size: Annotated[int, Range(ge=2)] = 3  # n-gram orders 2..N
    n_head_per_ngram: Count = 4  # hash heads per order
    n_embed_per_ngram: Count = 256  # memory width per order (head dim = this / heads)
    # rows per head, per order; null: 5 × vocab_size
    engram_vocab_size: list[Annotated[int, Range(ge=2)]] | None = None
    layer_id: Annotated[int, Range(ge=0)] = 1  # Engram layer id (seeds the hash); 1 = the paper's "layer 2"
    layer_ids: list[int] | None = None  # all Engram layer ids of the model (prime search order)
    seed: int = 0
    pad_id: int = 0  # tokenizer id used before the sequence start (compressed before hashing)
    branches: Count = 1  # gate branches: d_model split into this many groups
    kernel_size: Count = 4  # short conv kernel (dilation = max_ngram_size)
    gate: bool = True  # false: every gate is 1 (ablation)
    conv: bool = True  # false: no short conv (ablation)
    compression: bool = True  # false: hash raw token ids (ablation)
    placement: Literal["device", "host", "mmap", "sharded"] = "device"
    mmap_path: str | None = None  # null: <storage dir>/engram_table.f32, or a temporary file
    optimizer: Literal["adam", "adagrad"] = "adam"  # row-wise, see cogsim.engram.sparse_optim
    lr_multiplier: Positive = 5.0
    beta2: Annotated[float, Range(ge=0, lt=1)] = 0.999
    eps: Positive = 1e-8
    init_std: Positive = 1.0  # rows start N(0, init_std²), like nn.Embedding

    def check(self) -> None:
        n = self.max_ngram_size
        if self.n_embed_per_ngram % self.n_head_per_ngram:
            raise FieldError("n_embed_per_ngram", f"must be a multiple of n_head_per_ngram "
                             f"({self.n_head_per_ngram}), got {self.n_embed_per_ngram}")
        if self.engram_vocab_size is not None and len(self.engram_vocab_size) != n - 1:
            raise FieldError("engram_vocab_size", f"needs one size per n-gram order 2..{n} ({n - 1} values), "
                             f"got {len(self.engram_vocab_size)}")
        if self.layer_ids is not None and self.layer_id not in self.layer_ids:
            raise FieldError("layer_ids", f"must contain layer_id {self.layer_id}, got {self.layer_ids}")


class _GatherRows(torch.autograd.Function):
    """Lookups ``staged[inverse]`` whose backward segment-sums the gradient per unique row and hands
    it to ``sink`` (the table's side) instead of to an autograd leaf."""

    @staticmethod
    def forward(ctx, staged, inverse, sink):
        ctx.save_for_backward(inverse)
        ctx.sink, ctx.rows = sink, staged.shape[0]
        return staged[inverse]

    @staticmethod
    def backward(ctx, grad):
        (inverse,) = ctx.saved_tensors
        dim = grad.shape[-1]
        row_grad = torch.zeros(ctx.rows, dim, dtype=torch.float32, device=grad.device)
        row_grad.index_add_(0, inverse.reshape(-1), grad.reshape(-1, dim).to(torch.float32))
        ctx.sink(row_grad)
        return None, None, None


class EngramComponent(Component):
    type_name = "engram"
    Params = EngramParams
    description = "semantic memory: hashed n-gram tables, context-aware gate, short conv (DeepSeek Engram)"

    @classmethod
    def ports(cls, params: EngramParams, sizes: Sizes):
        d = sizes.d_model
        return ({"x": Port("hidden", d, doc="hidden state (gate queries)"),
                 "ids": Port("ids", doc="token ids of the base tokenizer")},
                {"out": Port("hidden", d, doc="memory read-out added to the residual stream")})

    def __init__(self, params: EngramParams, sizes: Sizes) -> None:
        super().__init__(params, sizes)
        p = params
        if sizes.d_model % p.branches:
            raise EngramConfigError("branches", f"d_model {sizes.d_model} is not divisible by {p.branches} branches")
        if not 0 <= p.pad_id < sizes.vocab_size:
            raise EngramConfigError("pad_id", f"must be a token id in [0, {sizes.vocab_size}), got {p.pad_id}")
        self.n = p.max_ngram_size
        self.head_dim = p.n_embed_per_ngram // p.n_head_per_ngram
        self.engram_vocab_size = list(p.engram_vocab_size or [5 * sizes.vocab_size] * (self.n - 1))
        self.layer_ids = list(p.layer_ids or [p.layer_id])
        self.register_buffer("token_compression", torch.arange(sizes.vocab_size), persistent=True)
        self.register_load_state_dict_post_hook(_after_load)
        self._mapping: NgramHashMapping | None = None
        self._lookups: dict[torch.device, torch.Tensor] = {}
        self._compression_changed()
        mapping = self.hash_mapping
        self.n_heads = mapping.n_heads_per_layer
        self._offsets = {torch.device("cpu"): mapping.offsets(p.layer_id)}
        rows, seed = mapping.table_rows(p.layer_id), p.seed + 10007 * p.layer_id
        if p.placement == "sharded":
            self.table = ShardedTable(rows, self.head_dim, seed=seed, std=p.init_std, what="engram_vocab_size")
        elif p.placement == "host" and node_ranks() > 1:
            self.table = NodeSharedTable(rows, self.head_dim, seed=seed, std=p.init_std, what="engram_vocab_size")
        else:
            self.table = EngramTable(rows, self.head_dim, p.placement, seed=seed, std=p.init_std,
                                     path=p.mmap_path, what="engram_vocab_size")
        self.fusion = EngramFusion(self.n_heads * self.head_dim, sizes.d_model, p.branches, p.kernel_size,
                                   dilation=self.n, gate=p.gate, conv=p.conv)
        self.optimizer = make_optimizer(p.optimizer, beta2=p.beta2, eps=p.eps)
        self.prefetcher = RowPrefetcher(self.table, self.table_rows)
        self._grads: list[tuple[torch.Tensor, torch.Tensor, object]] = []

    # ---- compression and hashing ----
    def attach_tokenizer(self, tokenizer) -> None:
        """Compress the run's tokenizer (a ``tokenizers.Tokenizer``) as the reference does and hash
        the compressed ids from now on (no-op with ``compression: false``)."""
        if self.params.compression:
            from cogsim.engram.compression import CompressedTokenizer

            self.set_token_compression(CompressedTokenizer(tokenizer).lookup_table)

    def attach_run_dir(self, path) -> None:
        """The run folder holds the mmap table when ``mmap_path`` is null or relative."""
        self.table.set_storage_dir(path)

    def set_token_compression(self, lookup_table: np.ndarray) -> None:
        """Use a tokenizer's compression (``CompressedTokenizer.lookup_table``: old id → new id,
        new ids numbered 0.. without gaps) for hashing from now on. Table rows keep their shape.
        A table shorter than the model's vocabulary (ids the tokenizer never emits) gets fresh ids."""
        table = np.asarray(lookup_table)
        vocab = self.sizes.vocab_size
        if table.ndim != 1 or not 0 < len(table) <= vocab or not np.issubdtype(table.dtype, np.integer):
            raise CogsimError(f"token compression: expected an integer lookup table of at most {vocab} ids "
                              f"(the model's vocab_size), got shape {table.shape} dtype {table.dtype}")
        if table.min() < 0 or len(np.unique(table)) != int(table.max()) + 1:
            raise CogsimError("token compression: new ids must be numbered 0..K-1 without gaps")
        extra = np.arange(int(table.max()) + 1, int(table.max()) + 1 + vocab - len(table))
        table = np.concatenate([table.astype(np.int64), extra])
        with torch.no_grad():
            self.token_compression.copy_(torch.from_numpy(table.astype(np.int64)))
        self._compression_changed()

    def _compression_changed(self) -> None:
        lookup = self.token_compression.cpu()
        self._compressed_vocab = int(lookup.max()) + 1 if self.params.compression else self.sizes.vocab_size
        self._compressed_pad = int(lookup[self.params.pad_id]) if self.params.compression else self.params.pad_id
        self._lookups = {lookup.device: lookup}
        self._mapping = None
        if hasattr(self, "prefetcher"):
            self.prefetcher.forget()

    @property
    def hash_mapping(self) -> NgramHashMapping:
        """The n-gram hash of the current compression (rebuilt when the lookup table changes)."""
        if self._mapping is None:
            p = self.params
            self._mapping = NgramHashMapping(self.engram_vocab_size, self.n, p.n_embed_per_ngram,
                                             p.n_head_per_ngram, self.layer_ids, self._compressed_pad,
                                             p.seed, self._compressed_vocab)
        return self._mapping

    def compress(self, ids: torch.Tensor) -> torch.Tensor:
        """Base-tokenizer ids → compressed ids (negative ids pass through, as in the reference)."""
        if not self.params.compression:
            return ids
        lookup = self._lookups.get(ids.device)
        if lookup is None:
            lookup = self._lookups[ids.device] = self._lookups[torch.device("cpu")].to(ids.device)
        return torch.where(ids >= 0, lookup[ids.clamp_min(0)], ids)

    def table_rows(self, ids: torch.Tensor) -> torch.Tensor:
        """Global table row of every lookup: ids [B, T] → [B, T, (N-1)·heads] on ids' device."""
        hashed = self.hash_mapping.hash(self.compress(ids))[self.params.layer_id]
        offsets = self._offsets.get(hashed.device)
        if offsets is None:
            offsets = self._offsets[hashed.device] = self._offsets[torch.device("cpu")].to(hashed.device)
        return hashed + offsets

    # ---- forward ----
    def _compute_device(self) -> torch.device:
        return self.fusion.value_proj.weight.device

    def prefetch(self, ids: torch.Tensor) -> None:
        """Start gathering the rows ``ids`` will need, in the background."""
        self.prefetcher.start(ids, self._compute_device())

    def forward(self, inputs: dict, ctx: Context) -> dict[str, torch.Tensor]:
        x, ids = inputs["x"], inputs["ids"]
        fetched = self.prefetcher.take(ids, x.device)
        e = self._lookup(fetched).flatten(2)  # [B, T, (N-1)·heads·head_dim]
        delta, gates = self.fusion(e, x)
        ctx.record("gate", gates)
        if ctx.recording:
            ctx.record("rows_touched", torch.tensor(len(fetched.rows)))
            ctx.record("collisions", self.collisions(ids))
        return {"out": delta}

    def _lookup(self, fetched: FetchedRows) -> torch.Tensor:
        if not (torch.is_grad_enabled() and self.training):
            return fetched.staged[fetched.inverse]
        rows, table_device = fetched.rows, self.table.device
        staged = fetched.staged.detach().requires_grad_(True)

        def sink(row_grad: torch.Tensor) -> None:  # backward: hand the row gradients to the table side
            event = None
            if row_grad.device != table_device and row_grad.is_cuda:
                host = torch.empty(row_grad.shape, dtype=row_grad.dtype, pin_memory=True)
                row_grad = host.copy_(row_grad, non_blocking=True)
                event = torch.cuda.Event()
                event.record()
            self._grads.append((rows, row_grad.to(table_device), event))

        return _GatherRows.apply(staged, fetched.inverse, sink)

    # ---- sparse updates ----
    def sparse_step(self, lr: float) -> None:
        """Row-wise optimizer step on the rows touched since the last step (lr × lr_multiplier).
        Under data parallel every rank calls it (the table exchanges the ranks' gradients)."""
        if not self._grads and not self.table.shared:
            return
        for _, _, event in self._grads:
            if event is not None:
                event.synchronize()
        if self._grads:
            rows, grad = _merge_row_grads([(r, g) for r, g, _ in self._grads])
        else:  # nothing touched here, but the other ranks' updates need this rank too
            dev = self.table.device
            rows, grad = torch.empty(0, dtype=torch.long, device=dev), torch.empty(0, self.head_dim, device=dev)
        self._grads.clear()
        self.prefetcher.wait()  # a fetch running in the prefetch thread may use the ranks' exchange
        self.prefetcher.refresh(self.table.apply_gradients(rows, grad, self.optimizer,
                                                           lr * self.params.lr_multiplier))

    def sparse_state_dict(self) -> dict[str, torch.Tensor]:
        return self.table.sparse_state_dict()

    def load_sparse_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.table.load_sparse_state_dict(state)
        self._grads.clear()
        self.prefetcher.forget()

    def memory_estimate(self) -> dict[str, int]:
        return self.table.memory_estimate()

    def row_shards(self) -> dict[str, tuple[torch.Tensor, int, int]]:
        return self.table.row_shards() if isinstance(self.table, ShardedTable) else {}

    def load_row_shards(self, read) -> None:
        if isinstance(self.table, ShardedTable):
            self.table.load_row_shards(read)
            self._grads.clear()
            self.prefetcher.forget()

    def gather_rows_to_main(self) -> None:
        self.prefetcher.forget()
        self.table.gather_rows_to_main()

    def close(self) -> None:
        """Stop the prefetch thread and flush/unmap an mmap table."""
        self.prefetcher.close()
        self.table.close()

    # ---- traces ----
    @torch.no_grad()
    def collisions(self, ids: torch.Tensor) -> torch.Tensor:
        """Per head, distinct n-grams of the batch that share a table row with another distinct
        n-gram (distinct n-grams − distinct rows); long [(N-1)·heads]."""
        ids = self.compress(ids.detach().cpu())
        heads = self.params.n_head_per_ngram
        rows = self.table_rows(ids.cpu()).reshape(-1, self.n_heads)
        padded = torch.nn.functional.pad(ids, (self.n - 1, 0), value=self._compressed_pad)
        windows = padded.unfold(1, self.n, 1).reshape(-1, self.n)  # last column = current token
        out = torch.empty(self.n_heads, dtype=torch.long)
        for order in range(2, self.n + 1):
            distinct = len(torch.unique(windows[:, self.n - order:], dim=0))
            for h in range(heads):
                col = (order - 2) * heads + h
                out[col] = distinct - len(torch.unique(rows[:, col]))
        return out

    def extra_repr(self) -> str:
        p = self.params
        return (f"orders=2..{self.n}, heads={p.n_head_per_ngram}, head_dim={self.head_dim}, "
                f"layer_id={p.layer_id}, optimizer={p.optimizer}×{p.lr_multiplier}")


def _after_load(module: EngramComponent, incompatible_keys) -> None:
    """A loaded state may carry another compression table: rebuild the hash mapping."""
    module._compression_changed()


def _merge_row_grads(grads: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum gradients of several forwards per row: (sorted unique rows, [U, dim] gradients)."""
    if len(grads) == 1:
        return grads[0]
    return sum_rows(torch.cat([r for r, _ in grads]), torch.cat([g for _, g in grads]))
