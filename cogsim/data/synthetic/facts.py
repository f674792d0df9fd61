"""``facts``: a fixed world of ``n_facts`` facts (subject, relation) → object, asked again and again.

The world is drawn once from the run's seed: the first ``n_facts`` (subject, relation) pairs of a
seeded shuffle, each with a uniform random object. Every sequence asks ``queries`` distinct facts in
random order at random places among distractor tokens: a query is the two tokens ``subject
relation`` and its target (at the relation) is the object. Objects never appear in the input, so
the answer cannot be read from the context: it must be stored in the weights or a memory table —
static memory capacity, Engram's job. Chance: the share of facts holding the world's most common
object (the best answer that ignores the question).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cogsim.bounds import Checked, Count
from cogsim.data.synthetic.base import IGNORE, WORLD, Task, SeqLen, check, sample_distinct


@dataclass
class FactsParams(Checked):
    n_facts: Count = 64  # facts in the world
    relations: Count = 4  # relation symbols; subjects = ceil(n_facts / relations)
    objects: Count = 32  # object symbols (the answers)
    queries: Count = 8  # facts asked per sequence (distinct)
    distractors: Count = 16  # distractor symbols filling the rest of a sequence
    seq_len: SeqLen = None  # default: model.seq_len

    def check(self) -> None:
        check(self.queries <= self.n_facts, "queries", f"must be ≤ n_facts ({self.n_facts}), got {self.queries}")


class Facts(Task):
    name = "facts"
    Params = FactsParams
    answer_kind = "object of the asked fact"

    def __init__(self, params: FactsParams, ctx) -> None:
        super().__init__(params, ctx)
        p = params
        check(2 * p.queries <= self.seq_len, "seq_len",
              f"seq_len {self.seq_len} is too short for {p.queries} queries of 2 tokens")
        self.n_subjects = math.ceil(p.n_facts / p.relations)
        self.distractor0 = self.vocab.add("d", p.distractors)
        self.subject0 = self.vocab.add("s", self.n_subjects)
        self.relation0 = self.vocab.add("r", p.relations)
        self.object0 = self.vocab.add("o", p.objects)
        world = self.generator(WORLD, 0)
        pairs = world.permutation(self.n_subjects * p.relations)[: p.n_facts]
        #: the world: subject, relation and object index of each fact
        self.subjects, self.relations = pairs // p.relations, pairs % p.relations
        self.objects = world.integers(0, p.objects, p.n_facts)

    @property
    def chance(self) -> float:
        return float(np.bincount(self.objects).max() / self.params.n_facts)

    def rows(self, rng: np.random.Generator, n: int, step: int) -> tuple[np.ndarray, np.ndarray]:
        p, t = self.params, self.seq_len
        x = self.distractor0 + rng.integers(0, p.distractors, (n, t))
        y = np.full((n, t), IGNORE, dtype=np.int64)
        asked = sample_distinct(rng, n, p.n_facts, p.queries)
        at = 2 * sample_distinct(rng, n, t // 2, p.queries)  # non-overlapping 2-token places
        r = np.arange(n)[:, None]
        x[r, at] = self.subject0 + self.subjects[asked]
        x[r, at + 1] = self.relation0 + self.relations[asked]
        y[r, at + 1] = self.object0 + self.objects[asked]
        return x, y
