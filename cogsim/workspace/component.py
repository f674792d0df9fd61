"""The ``workspace`` component: a capacity-limited global workspace (working memory, docs/design.md §5.4).

Modules offer candidates at every position; K slots bid over them and only the top-k win write
access; the slots follow a gated recurrence whose gates depend on what is written, not on the
previous slots, so it is linear and solved by a parallel scan; the stream reads the slots back by
attention, and that read-out is the residual delta.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from cogsim.bounds import Annotated, Checked, Count, FieldError, Positive, Range
from cogsim.component import Component, Context, Port, Sizes
from cogsim.errors import CogsimError
from cogsim.workspace.competition import compete, softmax
from cogsim.workspace.recurrence import DEFAULT_CHUNK, linear_scan

Target = Annotated[int, Range(ge=0, note="a candidate index")] | str  # a candidate index or name
#: default slot width as a fraction of d_model. At d_model 256, B=16, T=128, M=4 candidates the
#: full width costs ~3x the quarter width in forward+backward time (7 slots × d_model floats per
#: position pass through every elementwise step); see ``cogsim bench workspace``.
SLOT_FRACTION = 4


@dataclass
class WorkspaceParams(Checked):
    """YAML parameters of a ``workspace`` node."""

    slots: Count = 7  # K: capacity of the workspace
    top_k: Count = 2  # k: candidates that may write at one position
    d_slot: Count | None = None  # slot width (default d_model // 4, a multiple of heads: see SLOT_FRACTION)
    value_proj: bool = False  # project candidates into slot values (always when d_slot != d_model)
    d_key: Count = 32  # width of the competition keys/queries
    heads: Count = 4  # heads of the broadcast read (d_slot must divide by it)
    temperature: Positive = 1.0  # τ of the competition softmax
    salience_gain: float = 1.0  # γ: how much a salience signal raises its target's bid
    # candidate index or name, or "all" (the write gate); a list gives one target per salience edge
    salience_target: list[Target] | Target = "all"
    magnitude_gain: float = 1.0  # λ: bid raised by log rms of a candidate (louder signals bid higher)
    straight_through: bool = True  # losers' bids still get a gradient (their values never do)
    max_candidates: Count = 8  # size of the learned slot × candidate preference table
    forget_bias: float = 1.0
    input_bias: float = 0.0
    # how writes reach the slots: "mix" — every slot writes a mixture of the winners (softmax over
    # candidates) and decays by its forget gate; "address" — each winner is written into the slots
    # its key matches (softmax over slots) and a slot changes only where it is written (overwrite,
    # no decay), so distinct items go to distinct slots and stay there; "allocate" — a write gate
    # per position advances a slot pointer, each write goes to the slot under the pointer (a ring
    # buffer: K slots hold the last K items written, in order) (docs/design.md §5.4)
    addressing: Literal["mix", "address", "allocate"] = "mix"
    # how the stream reads the slots: "slot" — the slot content is both key and value (plus a learned
    # slot key); "keyed" — separate learned key and value projections of the content, plus the learned
    # slot key, so a query can match a slot by what it holds or by which slot it is
    read: Literal["slot", "keyed"] = "slot"
    pointer_grad: bool = False  # allocate: whether the slot pointer passes gradient back to the gates
    # allocate: the item written at t also holds a learned map of the item offered at t − 1 (a token
    # shift, the short convolution of recurrent recall models), so one write binds a pair, e.g. a key
    # and its value, that a query can later match by its first half (docs/design.md §5.4)
    pair_previous: bool = False
    chunk: Annotated[int, Range(ge=2)] = DEFAULT_CHUNK  # chunk length of the parallel scan

    def check(self) -> None:
        if self.d_slot is not None and self.d_slot % self.heads:
            raise FieldError("d_slot", f"must be a multiple of heads ({self.heads}), got {self.d_slot}")
        if self.pair_previous and self.addressing != "allocate":
            raise FieldError("pair_previous", f"needs addressing: allocate, got {self.addressing!r}")


def salience_targets(params: WorkspaceParams, names: list[str | None], n_signals: int | None
                     ) -> list[int | None]:
    """Candidate index per salience signal (None = all: the write gate), for candidates ``names``
    (in edge order; None for an unnamed one) and ``n_signals`` salience edges (None: not known).
    Raises ValueError for more candidates than ``max_candidates`` or a target that is no candidate."""
    m = len(names)
    if m > params.max_candidates:
        raise ValueError(f"{m} candidates but max_candidates is {params.max_candidates}; raise max_candidates")
    st = params.salience_target
    targets = st if isinstance(st, list) else [st] * (n_signals or 1)
    if n_signals is not None and len(targets) != n_signals:
        raise ValueError(f"salience_target lists {len(targets)} targets but {n_signals} salience edges arrive")
    out: list[int | None] = []
    for t in targets:
        if t == "all":
            out.append(None)
        elif isinstance(t, int):
            if t >= m:
                raise ValueError(f"salience_target {t} but only {m} candidates")
            out.append(t)
        elif t in names:
            out.append(names.index(t))
        else:
            known = ", ".join(n for n in names if n) or "none given"
            raise ValueError(f"salience_target {t!r} is not a candidate (candidates: {known})")
    return out


def slot_weights(pointer: torch.Tensor, k: int) -> torch.Tensor:
    """[..., K] weight of each slot under a pointer [...] (a real number of writes so far): the
    triangle max(0, 1 − d) of the circular distance d from the pointer to the slot's index, so an
    integer pointer p selects slot p mod K alone and a fractional one splits between two neighbours
    (the weights sum to 1 for K ≥ 2)."""
    if k == 1:
        return torch.ones(pointer.shape + (1,), dtype=pointer.dtype, device=pointer.device)
    j = torch.arange(k, dtype=pointer.dtype, device=pointer.device)
    d = torch.remainder(pointer[..., None] - j + k / 2, k) - k / 2
    return (1.0 - d.abs()).clamp(min=0.0)


class WorkspaceComponent(Component):
    """Global workspace: top-k competition for K slots, gated slot recurrence, broadcast delta."""

    type_name = "workspace"
    Params = WorkspaceParams
    description = "capacity-limited global workspace: candidates compete for K slots, broadcast back"

    def __init__(self, params: WorkspaceParams, sizes: Sizes) -> None:
        super().__init__(params, sizes)
        d, p = sizes.d_model, params
        self.d_slot = p.d_slot or max(p.heads, d // SLOT_FRACTION // p.heads * p.heads)
        k, ds = p.slots, self.d_slot
        self.candidate_names: list[str] = []
        # values: a learned projection of the candidates, or (d_slot = d_model without value_proj)
        # the winners' own normalised content
        self.project_values = p.value_proj or ds != d
        self.cand_proj = nn.Linear(d, p.d_key + 2 + (ds if self.project_values else 0), bias=False)
        self.stream_proj = nn.Linear(d, p.d_key + ds, bias=False)  # top-down query, read query
        self.slot_query = nn.Parameter(torch.randn(k, p.d_key) * 0.5)
        self.preference = nn.Parameter(torch.zeros(k, p.max_candidates))  # P[j, m]
        self.gate_bias = nn.Parameter(torch.tensor([p.input_bias, p.forget_bias]).repeat(k, 1))
        self.memory0 = nn.Parameter(torch.randn(k, ds) * 0.1)
        self.slot_key = nn.Parameter(torch.randn(k, ds) * 0.5)  # E: lets the stream address slots
        if p.read == "keyed":
            self.read_proj = nn.Linear(ds, 2 * ds, bias=False)  # slot content → read key, read value
        if p.pair_previous:
            self.previous_proj = nn.Linear(ds, ds, bias=False)  # the item at t − 1 → its part of the write at t
        self.out_proj = nn.Linear(ds, d, bias=False)
        nn.init.normal_(self.out_proj.weight, std=0.02)
        self._cycle_cache: dict[int, tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]] = {}

    @classmethod
    def ports(cls, params: WorkspaceParams, sizes: Sizes) -> tuple[dict[str, Port], dict[str, Port]]:
        d = sizes.d_model
        inputs = {
            "x": Port("hidden", d, doc="the stream: queries of the competition and of the broadcast"),
            "candidates": Port("hidden", d, required=True, multi=True,
                               doc="one candidate per incoming edge, in edge order"),
            "salience": Port("signal", required=False, multi=True,
                             doc="raises the bid of salience_target (or the write gate when 'all')"),
        }
        return inputs, {"out": Port("hidden", d, doc="broadcast of the slots (residual delta)")}

    @classmethod
    def check_plan(cls, name, plan):
        """The candidates the graph gives fit ``max_candidates``, and every salience target names one."""
        names = [e.src for e in plan.incoming[name].get("candidates", [])]
        salience = len(plan.incoming[name].get("salience", []))
        salience_targets(plan.nodes[name].params, names, salience or None)

    def bind(self, name, plan, nodes):
        self.set_candidate_names([e.src for e in plan.incoming[name].get("candidates", [])])

    def set_candidate_names(self, names: list[str]) -> None:
        """Names of the candidate edges' sources, in edge order (for traces and name targets)."""
        self._targets(names, None)  # fail early on a target that names no candidate
        self.candidate_names = list(names)

    # ---- salience ---------------------------------------------------------------------------
    def _targets(self, names: list[str | None], n_signals: int | None) -> list[int | None]:
        try:
            return salience_targets(self.params, names, n_signals)
        except ValueError as e:
            raise CogsimError(f"workspace: {e}") from None

    def _salience(self, signals: list[torch.Tensor], m: int, like: torch.Tensor
                  ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(bid bias [B, T, M], write-gate bias [B, T]) from the salience signals."""
        if not signals:
            return None, None
        bid = torch.zeros(like.shape[:2] + (m,), dtype=like.dtype, device=like.device)
        gate = torch.zeros(like.shape[:2], dtype=like.dtype, device=like.device)
        for s, target in zip(signals, self._targets((self.candidate_names + [None] * m)[:m], len(signals))):
            if target is None:
                gate = gate + s.to(like.dtype)
            else:
                bid[..., target] += s.to(like.dtype)
        g = self.params.salience_gain
        return bid * g, gate * g

    # ---- forward ----------------------------------------------------------------------------
    def forward(self, inputs: dict[str, Any], ctx: Context) -> dict[str, torch.Tensor]:
        p, ds = self.params, self.d_slot
        x = inputs["x"]
        cands = inputs["candidates"]
        cands = [cands] if isinstance(cands, torch.Tensor) else list(cands)
        sal = inputs.get("salience")
        sal = [] if sal is None else [sal] if isinstance(sal, torch.Tensor) else list(sal)
        m, k = len(cands), p.slots
        if not 1 <= m <= p.max_candidates:
            raise CogsimError(f"workspace: {m} candidates; expected 1 to max_candidates ({p.max_candidates})")
        b_, t_ = x.shape[:2]

        # 1/ρ of each candidate is folded into the small logits and write weights, so the
        # [B, T, M, D] candidates are only read (norm, projection), never rescaled or stacked
        cache = self._cycle_cache if ctx.cycle > 0 else {}
        reads = [self._read_candidate(i, c, cache) for i, c in enumerate(cands)]
        self._cycle_cache = cache if ctx.cycle + 1 < ctx.cycles else {}
        rms = torch.stack([r for r, _ in reads], -1)  # ρ [B, T, M]
        proj = torch.stack([q for _, q in reads], 2)  # W_c c = ρ · W_c ĉ
        key, payload = proj.split([p.d_key, proj.shape[-1] - p.d_key], -1)  # payload: gate logits, values
        if not self.project_values:
            payload = torch.cat([payload, torch.stack(cands, 2)], -1)
        sq = self.stream_proj(F.rms_norm(x, x.shape[-1:]))
        top_down, read_q = sq.split([p.d_key, ds], -1)
        # q_{t,j}·k = Q_j·k + top_down_t·k: one [B·T·M, dk] × [dk, K] product, no tiny batched ones
        scores = ((key @ self.slot_query.t()).transpose(-1, -2)
                  + (key * top_down[..., None, :]).sum(-1)[..., None, :])
        logits = scores / (math.sqrt(p.d_key) * rms[..., None, :])  # [B, T, K, M]
        bias = self.preference[:, :m] + p.magnitude_gain * rms.log()[..., None, :]
        bid_bias, gate_bias = self._salience(sal, m, x)
        if bid_bias is not None:
            bias = bias + bid_bias[..., None, :]
        comp = compete((logits + bias) / p.temperature, p.top_k, p.straight_through)

        if p.addressing == "address":
            write, gi, log_f, write_gate, inject = self._addressed(logits + bias, comp.winners, payload, rms,
                                                                   gate_bias)
        elif p.addressing == "allocate":
            write, gi, log_f, write_gate, inject = self._allocated(comp.write, comp.winners, payload, rms,
                                                                   gate_bias)
        else:
            write = comp.write
            # Σ_m α/ρ [g_i, g_f, v](c_m) = Σ_m α [g_i, g_f, v](ĉ_m), times 2 for the tanh below
            written = (write * (2.0 / rms[..., None, :])) @ payload  # [B, T, K, 2 + ds]
            gate, content2 = written.split([2, ds], -1)
            gate = gate * 0.5 + self.gate_bias
            gi, gf = gate.unbind(-1)  # [B, T, K]
            if gate_bias is not None:
                gi = gi + gate_bias[..., None]
            log_f = F.logsigmoid(gf).transpose(1, 2).reshape(b_ * k, t_)
            # σ(i)·tanh(M̃) = 2σ(i)·(σ(2M̃) - ½): sigmoid is much cheaper than tanh on CPU, and the
            # factor 2σ(i) is a per-slot scalar the scan folds into its small decay matrix
            write_gate = 2.0 * torch.sigmoid(gi).transpose(1, 2).reshape(b_ * k, t_)
            inject = torch.sigmoid(content2.transpose(1, 2).reshape(b_ * k, t_, ds)) - 0.5
        h0 = self.memory0.to(inject.dtype).repeat(b_, 1)
        mem = linear_scan(log_f, inject, h0, p.chunk, scale=write_gate)  # M_t as [B·K, T, ds]

        hd = ds // p.heads
        mem_h = mem.view(b_, k, t_, p.heads, hd)
        if p.read == "keyed":
            mem_k, mem_v = self.read_proj(mem).view(b_, k, t_, 2, p.heads, hd).unbind(3)
        else:
            mem_k = mem_v = mem_h
        rq = read_q.unflatten(-1, (p.heads, hd))  # [B, T, H, hd]
        slot_key = torch.einsum("bthd,khd->bkth", rq, self.slot_key.view(k, p.heads, hd))
        score = (mem_k * rq[:, None]).sum(-1) + slot_key
        beta = softmax(score / math.sqrt(hd), 1)  # over slots: [B, K, T, H]
        out = self.out_proj((beta[..., None] * mem_v).sum(1).flatten(-2))

        if ctx.recording:
            ctx.record("bids", comp.bids)
            ctx.record("winners", comp.winners)
            ctx.record("slot_owner", lambda: self._owners(log_f, gi, write, b_, t_))
            ctx.record("write_gate", torch.sigmoid(gi))
            ctx.record("read_weights", lambda: beta.mean(-1).transpose(1, 2))
        return {"out": out}

    def _addressed(self, logits: torch.Tensor, winners: torch.Tensor, payload: torch.Tensor, rms: torch.Tensor,
                   gate_bias: torch.Tensor | None):
        """Addressed writes: winner m goes to slot j with weight w_jm = softmax_j(ℓ_jm)·σ(g_i(ĉ_m) + b_i[j]);
        slot j takes a_j = 1 − Π_m (1 − w_jm) of the new content (the w-weighted mean of the winners'
        values) and keeps 1 − a_j of the old: M_j ← (1 − a_j) M_j + a_j tanh(M̃_j). Returns (mixture
        weights [B, T, K, M], logit of a, log(1 − a) and the scan's scale a as [B·K, T], inject)."""
        p, ds, k = self.params, self.d_slot, self.params.slots
        b_, t_ = logits.shape[:2]
        gates = payload[..., 0] / rms  # g_i of each normalised candidate [B, T, M]
        if gate_bias is not None:
            gates = gates + gate_bias[..., None]
        route = softmax(logits / p.temperature, 2) * winners[..., None, :].to(logits.dtype)  # over slots
        w = route * torch.sigmoid(gates[..., None, :] + self.gate_bias[:, :1])  # [B, T, K, M]
        keep = torch.exp(torch.log1p(-w.clamp(max=1 - 1e-6)).sum(-1))  # Π_m (1 − w_jm) [B, T, K]
        a = (1.0 - keep).clamp(max=1 - 1e-6)
        mix = w / w.sum(-1, keepdim=True).clamp(min=1e-9)
        values = payload[..., 2:] / rms[..., None]  # [B, T, M, ds]
        content2 = 2.0 * (mix @ values)  # [B, T, K, ds]
        flat = lambda z: z.transpose(1, 2).reshape(b_ * k, t_)
        inject = torch.sigmoid(content2.transpose(1, 2).reshape(b_ * k, t_, ds)) - 0.5
        # tanh(M̃) = 2(σ(2M̃) − ½): the factor 2 goes into the scan's scale with a
        return mix, torch.logit(a.clamp(min=1e-6)), flat(torch.log1p(-a)), flat(2.0 * a), inject

    def _allocated(self, write: torch.Tensor, winners: torch.Tensor, payload: torch.Tensor, rms: torch.Tensor,
                   gate_bias: torch.Tensor | None):
        """Allocated writes (a ring buffer): the winners together give one item ṽ_t = Σ_{m wins} v_m and
        one write gate g_t = σ(Σ_{m wins} g_i(ĉ_m) + b_i) per position;
        the pointer P_t = Σ_{s<t} g_s counts the writes before t and the item goes to the slots near
        P_t mod K, w_tj = max(0, 1 − circular distance(P_t, j)), by a_tj = g_t·w_tj:
        M_j ← (1 − a_tj) M_j + a_tj tanh(ṽ_t) (with pair_previous, ṽ_t + W_s ṽ_{t−1}). The gates depend on the candidates only, so this is
        the same linear recurrence. Returns what :meth:`_addressed` returns."""
        p, k = self.params, self.params.slots
        b_, t_ = write.shape[:2]
        # every winner writes in full (its gate logit and value add up, as if concatenated); the
        # bids still learn, straight through, from the slot-averaged write weights
        alpha = write.mean(-2)
        alpha = winners.to(alpha.dtype) + (alpha - alpha.detach())  # [B, T, M]
        gate = (alpha * payload[..., 0] / rms).sum(-1) + self.gate_bias[:, 0].mean()  # [B, T]
        if gate_bias is not None:
            gate = gate + gate_bias
        g = torch.sigmoid(gate)
        # writes before t; the pointer takes no gradient: a gate learns from what its own write
        # keeps or overwrites, not from where it moves every later write (a noisy, global signal)
        pointer = g.cumsum(-1) - g
        if not p.pointer_grad:
            pointer = pointer.detach()
        a = g[..., None] * slot_weights(pointer, k)  # [B, T, K]
        a = a.clamp(max=1 - 1e-6)
        values = payload[..., 2:] / rms[..., None]  # [B, T, M, ds]
        item = 2.0 * (alpha[..., None, :] @ values).squeeze(-2)  # [B, T, ds]
        if p.pair_previous:  # ṽ_t += W_s ṽ_{t−1}: the write at t also carries what was offered just before
            item = item + self.previous_proj(F.pad(item, (0, 0, 1, 0))[:, :-1])
        inject = (torch.sigmoid(item) - 0.5)[:, None].expand(b_, k, t_, item.shape[-1]).reshape(b_ * k, t_, -1)
        flat = lambda z: z.transpose(1, 2).reshape(b_ * k, t_)
        mix = alpha[..., None, :].expand(b_, t_, k, alpha.shape[-1])
        return mix, torch.logit(a.clamp(min=1e-6)), flat(torch.log1p(-a)), flat(2.0 * a), inject

    def _read_candidate(self, i: int, c: torch.Tensor, cache: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(ρ [B, T], W_c c [B, T, ·]) of candidate i. A candidate that did not change since the
        previous cognitive cycle of the same forward (a module upstream of every feedback edge: the
        model hands over the very same tensor) is not read again: ``cache`` keeps the readings for
        the forward's later cycles only (the instance drops it after the last cycle)."""
        hit = cache.get(i)
        if hit is not None and hit[0] is c:
            return hit[1]
        rms = (torch.linalg.vector_norm(c, dim=-1).square() / c.shape[-1] + 1e-6).sqrt()
        cache[i] = (c, (rms, self.cand_proj(c)))
        return cache[i][1]

    @torch.no_grad()
    def _owners(self, log_f: torch.Tensor, gi: torch.Tensor, write: torch.Tensor, b_: int, t_: int
                ) -> torch.Tensor:
        """[B, T, K] candidate holding each slot: the one whose writes, decayed by the forget
        gates, make up the largest share of the slot; -1 while the initial content dominates."""
        k, m = self.params.slots, write.shape[-1]
        share_in = torch.sigmoid(gi)[..., None] * write  # [B, T, K, M]
        share_in = F.pad(share_in, (1, 0)).transpose(1, 2).reshape(b_ * k, t_, m + 1)
        h0 = torch.zeros(b_ * k, m + 1, dtype=share_in.dtype, device=share_in.device)
        h0[:, 0] = 1.0  # the learned initial content
        share = linear_scan(log_f.float(), share_in.float(), h0, self.params.chunk)
        return (share.argmax(-1) - 1).view(b_, k, t_).transpose(1, 2)


__all__ = ["WorkspaceComponent", "WorkspaceParams"]
