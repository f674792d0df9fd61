"""``mqar``: multi-query associative recall (Arora et al. 2023, "Zoology").

A sequence opens with ``pairs`` key–value pairs ``k v k v …``; then filler ``·``, among which every
key is asked once, in random order, each query a lone key token whose target is its value. Queries
sit at random positions at least ``gap`` after the last pair's value token, so every query is at
least ``gap`` positions from its pair: with ``gap`` beyond a windowed stack's reach L·(W−1) no pair
is visible from its query and only a memory can carry it. Values are never shown again.

Vocabulary (``vocab`` symbols in all): ``·`` filler, then keys and values in two halves. Keys and
values are distinct within a sequence. Chance: 1 / (number of values).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cogsim.bounds import Checked, Count
from cogsim.data.synthetic.base import IGNORE, Task, SeqLen, check, sample_distinct


@dataclass
class MqarParams(Checked):
    pairs: Count = 4  # key–value pairs per sequence; every key is queried once
    gap: Count = 32  # minimum distance from a pair's value token to the query of its key
    vocab: int = 64  # symbols in all: the filler, keys (half the rest) and values
    seq_len: SeqLen = None  # default: model.seq_len

    def check(self) -> None:
        check(self.vocab >= 2 * self.pairs + 1, "vocab",
              f"must be ≥ 2·pairs + 1 = {2 * self.pairs + 1} (distinct keys and values), got {self.vocab}")


class Mqar(Task):
    name = "mqar"
    Params = MqarParams
    answer_kind = "value of the queried key"

    def __init__(self, params: MqarParams, ctx) -> None:
        super().__init__(params, ctx)
        p, t = params, self.seq_len
        self.first_query = 2 * p.pairs - 1 + p.gap
        check(t - self.first_query >= p.pairs, "seq_len",
              f"seq_len {t} is too short for {p.pairs} pairs at gap {p.gap}: it needs ≥ 3·pairs + gap − 1 = "
              f"{self.first_query + p.pairs}")
        self.n_keys = (p.vocab - 1) // 2
        self.n_values = p.vocab - 1 - self.n_keys
        self.filler = self.vocab.add("", 1, ["·"])
        self.key0 = self.vocab.add("k", self.n_keys)
        self.value0 = self.vocab.add("v", self.n_values)

    @property
    def chance(self) -> float:
        return 1.0 / self.n_values

    def rows(self, rng: np.random.Generator, n: int, step: int) -> tuple[np.ndarray, np.ndarray]:
        p, t = self.params, self.seq_len
        keys = self.key0 + sample_distinct(rng, n, self.n_keys, p.pairs)
        values = self.value0 + sample_distinct(rng, n, self.n_values, p.pairs)
        slots = np.sort(sample_distinct(rng, n, t - self.first_query, p.pairs), axis=1) + self.first_query
        order = sample_distinct(rng, n, p.pairs, p.pairs)  # which pair each query slot asks
        x = np.full((n, t), self.filler, dtype=np.int64)
        y = np.full((n, t), IGNORE, dtype=np.int64)
        x[:, 0 : 2 * p.pairs : 2], x[:, 1 : 2 * p.pairs : 2] = keys, values
        r = np.arange(n)[:, None]
        x[r, slots] = np.take_along_axis(keys, order, axis=1)
        y[r, slots] = np.take_along_axis(values, order, axis=1)
        return x, y
