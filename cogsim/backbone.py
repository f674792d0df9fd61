"""Backbone components (docs/design.md §6): token embedding, causal attention, SwiGLU feed-forward,
pre-norm transformer block, a linear projection and the (tied) LM head."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cogsim.bounds import Annotated, Checked, Count, FieldError, Positive, Range
from cogsim.component import Component, Port, Sizes
from cogsim.settings import Window

Dropout = Annotated[float, Range(ge=0, lt=1)]


def _split_heads(d_model: int, n_heads: int) -> None:
    if d_model % n_heads or (d_model // n_heads) % 2:
        raise FieldError("n_heads", f"d_model {d_model} must split into {n_heads} heads of even size")


# ---- token embedding -------------------------------------------------------------------------
@dataclass
class EmbeddingParams(Checked):
    dropout: Dropout = 0.0


class TokenEmbedding(Component):
    """Token ids → vectors. The LM head may share (tie) this weight."""

    type_name = "embedding"
    Params = EmbeddingParams
    main_input = "ids"
    residual = False
    description = "token ids → hidden vectors"

    @classmethod
    def ports(cls, params, sizes):
        return {"ids": Port("ids")}, {"out": Port("hidden", sizes.d_model)}

    def __init__(self, params: EmbeddingParams, sizes: Sizes) -> None:
        super().__init__(params, sizes)
        self.weight = nn.Parameter(torch.randn(sizes.vocab_size, sizes.d_model) * 0.02)
        self.dropout = nn.Dropout(params.dropout)

    def forward(self, inputs, ctx):
        return {"out": self.dropout(F.embedding(inputs["ids"], self.weight))}


# ---- attention ---------------------------------------------------------------------------------
@dataclass
class AttentionParams(Checked):
    n_heads: Count | None = None  # default: the model's n_heads
    dropout: Dropout = 0.0
    rope_base: Positive = 10000.0
    window: Window | None = None  # positions each token sees, itself included; None: model.window; 0: all


def rotary(x: torch.Tensor, base: float) -> torch.Tensor:
    """Rotary position embedding over the last dim of [B, H, T, Dh] (pairs split in halves)."""
    t, dh = x.shape[-2], x.shape[-1]
    inv = base ** (-torch.arange(0, dh // 2, device=x.device, dtype=torch.float32) / (dh // 2))
    ang = torch.arange(t, device=x.device, dtype=torch.float32)[:, None] * inv[None, :]
    cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
    x1, x2 = x[..., : dh // 2], x[..., dh // 2 :]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def window_mask(t: int, window: int, device: torch.device) -> torch.Tensor:
    """Boolean [T, T] mask of sliding-window causal attention: query i sees keys i-W+1 … i."""
    i = torch.arange(t, device=device)
    lag = i[:, None] - i[None, :]
    return (lag >= 0) & (lag < window)


class Attention(Component):
    """Pre-norm causal multi-head self-attention (``scaled_dot_product_attention``, rotary
    positions); returns the residual delta. With ``window: W`` each position sees only the last W
    positions (itself included), so L stacked layers reach exactly L·(W−1) tokens back."""

    type_name = "attention"
    Params = AttentionParams
    description = "causal self-attention (pre-norm, rotary)"

    @classmethod
    def check_plan(cls, name, plan):
        _split_heads(plan.sizes.d_model, plan.nodes[name].params.n_heads or plan.sizes.n_heads)

    def __init__(self, params: AttentionParams, sizes: Sizes) -> None:
        super().__init__(params, sizes)
        d, self.n_heads = sizes.d_model, params.n_heads or sizes.n_heads
        _split_heads(d, self.n_heads)
        self.norm = nn.RMSNorm(d)
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d, bias=False)
        self.dropout = params.dropout
        self.window = sizes.window if params.window is None else params.window

    def forward(self, inputs, ctx):
        x = inputs["x"]
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm(x)).view(b, t, 3, self.n_heads, d // self.n_heads).unbind(2)
        q, k, v = (z.transpose(1, 2) for z in (q, k, v))
        q, k = rotary(q, self.params.rope_base), rotary(k, self.params.rope_base)
        drop = self.dropout if self.training else 0.0
        if 0 < self.window < t:  # the window cuts something off: an explicit mask
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=window_mask(t, self.window, x.device),
                                               dropout_p=drop)
        else:  # full causal attention (also when W ≥ T: the same computation, bit for bit)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=drop)
        return {"out": self.proj(y.transpose(1, 2).reshape(b, t, d))}


# ---- feed-forward ----------------------------------------------------------------------------
@dataclass
class FeedForwardParams(Checked):
    hidden: Count | None = None  # default: 8/3 · d_model rounded up to a multiple of 32
    dropout: Dropout = 0.0


class FeedForward(Component):
    """Pre-norm SwiGLU feed-forward; returns the residual delta."""

    type_name = "feedforward"
    Params = FeedForwardParams
    description = "SwiGLU feed-forward (pre-norm)"

    def __init__(self, params: FeedForwardParams, sizes: Sizes) -> None:
        super().__init__(params, sizes)
        d = sizes.d_model
        h = params.hidden or 32 * math.ceil(8 * d / 3 / 32)
        self.norm = nn.RMSNorm(d)
        self.gate_up = nn.Linear(d, 2 * h, bias=False)
        self.down = nn.Linear(h, d, bias=False)
        self.drop = nn.Dropout(params.dropout)

    def forward(self, inputs, ctx):
        gate, up = self.gate_up(self.norm(inputs["x"])).chunk(2, dim=-1)
        return {"out": self.drop(self.down(F.silu(gate) * up))}


# ---- transformer block -----------------------------------------------------------------------
@dataclass
class BlockParams(Checked):
    n_heads: Count | None = None
    ffn_hidden: Count | None = None
    dropout: Dropout = 0.0
    window: Window | None = None  # attention window (see AttentionParams); None: model.window


class Block(Component):
    """A transformer block: x + attn(x), then + ffn(·); returns the total residual delta."""

    type_name = "block"
    Params = BlockParams
    description = "transformer block: attention + SwiGLU"
    check_plan = Attention.check_plan  # the same heads

    def __init__(self, params: BlockParams, sizes: Sizes) -> None:
        super().__init__(params, sizes)
        self.attn = Attention(AttentionParams(params.n_heads, params.dropout, window=params.window), sizes)
        self.ffn = FeedForward(FeedForwardParams(params.ffn_hidden, params.dropout), sizes)

    def forward(self, inputs, ctx):
        x = inputs["x"]
        h = x + self.attn({"x": x}, ctx)["out"]
        h = h + self.ffn({"x": h}, ctx)["out"]
        return {"out": h - x}


# ---- linear projection -----------------------------------------------------------------------
@dataclass
class LinearParams(Checked):
    d_out: Count | None = None  # default: d_model
    bias: bool = False


class Linear(Component):
    """A learned linear map of the hidden state (e.g. to a different width); not residual."""

    type_name = "linear"
    Params = LinearParams
    residual = False
    description = "linear projection"

    @classmethod
    def ports(cls, params, sizes):
        return {"x": Port("hidden", sizes.d_model)}, {"out": Port("hidden", params.d_out or sizes.d_model)}

    def __init__(self, params: LinearParams, sizes: Sizes) -> None:
        super().__init__(params, sizes)
        self.proj = nn.Linear(sizes.d_model, params.d_out or sizes.d_model, bias=params.bias)

    def forward(self, inputs, ctx):
        return {"out": self.proj(inputs["x"])}


# ---- LM head ---------------------------------------------------------------------------------
@dataclass
class LMHeadParams(Checked):
    tie: bool = True  # share the weight of the graph's embedding node


class LMHead(Component):
    """Final RMSNorm and projection to vocabulary logits, tied to the token embedding by default."""

    type_name = "lm_head"
    Params = LMHeadParams
    main_output = "logits"
    residual = False
    description = "final norm + vocabulary logits"

    @classmethod
    def ports(cls, params, sizes):
        return {"x": Port("hidden", sizes.d_model)}, {"logits": Port("logits", sizes.vocab_size)}

    def __init__(self, params: LMHeadParams, sizes: Sizes) -> None:
        super().__init__(params, sizes)
        self.norm = nn.RMSNorm(sizes.d_model)
        self.weight = None if params.tie else nn.Parameter(torch.randn(sizes.vocab_size, sizes.d_model) * 0.02)
        self._tied: list[TokenEmbedding] = []  # a plain list so the embedding is not a submodule twice

    @classmethod
    def check_plan(cls, name, plan):
        embeddings = [n for n, info in plan.nodes.items() if issubclass(info.cls, TokenEmbedding)]
        if plan.nodes[name].params.tie and len(embeddings) != 1:
            raise ValueError(f"'tie: true' needs exactly one embedding node, found {len(embeddings)}; "
                             "set 'tie: false'")

    def bind(self, name, plan, nodes):
        if self.params.tie:
            self.tie_to(next(c for c in nodes.values() if isinstance(c, TokenEmbedding)))

    def tie_to(self, embedding: TokenEmbedding) -> None:
        self._tied = [embedding]

    def forward(self, inputs, ctx):
        weight = self._tied[0].weight if self.params.tie else self.weight
        if weight is None:
            raise RuntimeError("lm_head is tied but no embedding node was bound")
        return {"logits": F.linear(self.norm(inputs["x"]), weight)}
