"""``count``: how many times the marker ``*`` appeared in the last ``span`` positions.

A stream of noise symbols holds the marker at each position with probability ``p``. At
``queries`` random positions (≥ ``span``) the token ``?`` asks the count of markers among the
``span`` positions before it; the target is a count symbol ``#0 … #span`` that never appears in
the input. With ``span`` beyond the attention window the count must be integrated over time —
the job of the spiking layer. Chance: the probability of the most likely count, max_k
Binomial(span, p)(k) (queries inside a span replace non-markers, so this is approximate).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cogsim import bounds
from cogsim.bounds import Annotated, Checked, Range
from cogsim.data.synthetic.base import IGNORE, Task, SeqLen, check, sample_distinct


@dataclass
class CountParams(Checked):
    span: bounds.Count = 48  # D: the positions counted before each query
    p: Annotated[float, Range(gt=0, lt=1)] = 0.25  # probability of the marker at each position
    queries: bounds.Count = 8  # queries per sequence
    noise: bounds.Count = 8  # noise symbols
    seq_len: SeqLen = None  # default: model.seq_len


class Count(Task):
    name = "count"
    Params = CountParams
    answer_kind = "markers in the last span positions"

    def __init__(self, params: CountParams, ctx) -> None:
        super().__init__(params, ctx)
        p, t = params, self.seq_len
        check(t - p.span >= p.queries, "seq_len", f"seq_len {t} is too short for {p.queries} queries after a span "
                                                  f"of {p.span}: it needs ≥ span + queries = {p.span + p.queries}")
        self.noise0 = self.vocab.add("n", p.noise)
        self.marker = self.vocab.add("", 1, ["*"])
        self.ask = self.vocab.add("", 1, ["?"])
        self.count0 = self.vocab.add("#", p.span + 1)

    @property
    def chance(self) -> float:
        d, p = self.params.span, self.params.p
        return max(math.comb(d, k) * p**k * (1 - p) ** (d - k) for k in range(d + 1))

    def rows(self, rng: np.random.Generator, n: int, step: int) -> tuple[np.ndarray, np.ndarray]:
        p, t = self.params, self.seq_len
        x = self.noise0 + rng.integers(0, p.noise, (n, t))
        x[rng.random((n, t)) < p.p] = self.marker
        y = np.full((n, t), IGNORE, dtype=np.int64)
        at = p.span + sample_distinct(rng, n, t - p.span, p.queries)
        r = np.arange(n)[:, None]
        x[r, at] = self.ask
        seen = np.concatenate([np.zeros((n, 1), np.int64), np.cumsum(x == self.marker, axis=1)], axis=1)
        y[r, at] = self.count0 + seen[r, at] - seen[r, at - p.span]  # markers in x[t − span : t]
        return x, y
