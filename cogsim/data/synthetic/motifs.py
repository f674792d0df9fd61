"""``motifs``: online learning of high-order sequences that share sub-sequences, with a switch
(after Cui, Ahmad & Hawkins 2016, "Continuous online sequence learning with an unsupervised neural
network model").

There are ``groups`` groups of ``branches`` sequences each. The sequences of a group share one
sub-sequence of ``shared`` symbols and differ only in their first and last symbol: ``s_b M e_b``.
A stream reads random sequences separated by 1 … ``noise`` noise symbols; the answer positions are
the last shared symbol, whose target is the end ``e_b``, which only the start ``shared`` positions
back decides. At training step ``switch`` the ends rotate within each group (``s_b M e_{b+1}``):
what was learned is now wrong, and the run's report gives the accuracy before and after the switch
and the steps it took to recover. Chance: 1 / ``branches``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cogsim.bounds import Annotated, Checked, Count, Range
from cogsim.data.synthetic.base import IGNORE, Task, SeqLen, check

#: noise symbols between sequences
NOISE = 8


@dataclass
class MotifsParams(Checked):
    groups: Count = 2  # groups of sequences sharing a sub-sequence
    # sequences per group (same middle, different start and end)
    branches: Annotated[int, Range(ge=2, note="one shared sub-sequence, several endings")] = 2
    shared: Count = 16  # length of the shared sub-sequence: how far back the deciding start lies
    noise: Count = 4  # at most this many noise symbols between sequences (at least 1)
    # training step at which the ends rotate; default half of train.steps; 0: never
    switch: Annotated[int, Range(ge=0, note="0: never")] | None = None
    seq_len: SeqLen = None  # default: model.seq_len


class Motifs(Task):
    name = "motifs"
    Params = MotifsParams
    answer_kind = "end of a sequence after its shared sub-sequence"
    report_metrics = {"accuracy_before_switch": (+1, "motifs: online accuracy before the switch"),
                      "accuracy_after_switch": (+1, "motifs: online accuracy at the end"),
                      "recovery_steps": (-1, "motifs: steps to recover after the switch")}

    def __init__(self, params: MotifsParams, ctx) -> None:
        super().__init__(params, ctx)
        p = params
        check(self.seq_len >= p.noise + p.shared + 2, "seq_len",
              f"seq_len {self.seq_len} is too short for one sequence (noise + shared + 2 = {p.noise + p.shared + 2})")
        self.switch = ctx.steps // 2 if p.switch is None else p.switch
        self.noise0 = self.vocab.add("n", NOISE)
        self.start0 = self.vocab.add("s", p.groups * p.branches)
        self.middle0 = self.vocab.add("m", p.groups * p.shared)
        self.end0 = self.vocab.add("e", p.groups * p.branches)

    @property
    def chance(self) -> float:
        return 1.0 / self.params.branches

    def phase(self, step: int) -> int:
        """0 before the switch, 1 from it on."""
        return int(0 < self.switch <= step)

    def sequence(self, group: int, branch: int, phase: int) -> list[int]:
        """The symbols of sequence ``branch`` of ``group`` in ``phase``."""
        p = self.params
        middle = self.middle0 + group * p.shared + np.arange(p.shared)
        end = self.end0 + group * p.branches + (branch + phase) % p.branches
        return [self.start0 + group * p.branches + branch, *middle.tolist(), end]

    def rows(self, rng: np.random.Generator, n: int, step: int) -> tuple[np.ndarray, np.ndarray]:
        p, t, phase = self.params, self.seq_len, self.phase(step)
        x = np.empty((n, t), dtype=np.int64)
        y = np.full((n, t), IGNORE, dtype=np.int64)
        for row in range(n):
            stream: list[int] = []
            answers: list[int] = []
            while len(stream) <= t:
                stream += (self.noise0 + rng.integers(0, NOISE, rng.integers(1, p.noise + 1))).tolist()
                seq = self.sequence(int(rng.integers(p.groups)), int(rng.integers(p.branches)), phase)
                answers.append(len(stream) + p.shared)  # the last shared symbol
                stream += seq
            x[row] = stream[:t]
            for a in answers:
                if a < t:
                    y[row, a] = stream[a + 1]
        return x, y

    def report(self, rows: list[dict]) -> dict:
        """Online accuracy (training batches, before each update) at the answers: just before the
        switch, at the end, and the steps after the switch until it is back within 10% of the way
        from chance to the level before (None: never, or nothing was learned before the switch)."""
        acc = [(r["step"], r["train_accuracy"]) for r in rows if "train_accuracy" in r]
        if not self.switch or not acc or acc[-1][0] <= self.switch:
            return {}
        pre = [(s, a) for s, a in acc if s <= self.switch]
        post = [(s, a) for s, a in acc if s > self.switch]
        if not pre:
            return {}
        tail = max(1, len(pre) // 5)
        before = float(np.mean([a for _, a in pre[-tail:]]))
        after = float(np.mean([a for _, a in post[-max(1, len(post) // 5):]]))
        level = self.chance + 0.9 * (before - self.chance)
        learned = before >= self.chance + 0.1
        recovery = next((s - self.switch for s, a in post if a >= level), None) if learned else None
        return {"switch_step": self.switch, "accuracy_before_switch": before, "accuracy_after_switch": after,
                "recovery_steps": recovery}
