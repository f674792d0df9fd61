"""``copy``: selective copying with a delay (delayed recall).

``items`` content tokens are scattered at random positions among noise tokens; after at least
``delay`` more positions come ``items`` cue tokens ``@0 @1 …`` at the end of the sequence, and the
target at cue ``@i`` is the i-th content token in order of appearance. Content tokens are distinct
within a sequence and come from their own range (they are the "marked" tokens), noise from another,
so nothing but the items themselves holds an answer. With ``delay`` beyond the attention window the
items must be held in a memory across it — what the workspace slots are for; the number of items is
the load of a capacity curve. Chance: 1 / ``vocab``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cogsim.bounds import Checked, Count
from cogsim.data.synthetic.base import IGNORE, Task, SeqLen, check, sample_distinct


@dataclass
class CopyParams(Checked):
    items: Count = 4  # marked tokens to reproduce
    delay: Count = 32  # minimum distance from the last item to the first cue
    vocab: Count = 16  # content symbols the items are drawn from
    noise: Count = 4  # noise symbols
    seq_len: SeqLen = None  # default: model.seq_len

    def check(self) -> None:
        check(self.vocab >= self.items, "vocab",
              f"must be ≥ items ({self.items}): items are distinct, got {self.vocab}")


class SelectiveCopy(Task):
    name = "copy"
    Params = CopyParams
    answer_kind = "the i-th marked token"

    def __init__(self, params: CopyParams, ctx) -> None:
        super().__init__(params, ctx)
        p, t = params, self.seq_len
        self.span = t - p.items - p.delay + 1  # item positions 0 … span − 1
        check(self.span >= p.items, "seq_len", f"seq_len {t} is too short for {p.items} items at delay {p.delay}: "
                                               f"it needs ≥ 2·items + delay − 1 = {2 * p.items + p.delay - 1}")
        self.noise0 = self.vocab.add("n", p.noise)
        self.content0 = self.vocab.add("c", p.vocab)
        self.cue0 = self.vocab.add("@", p.items)

    @property
    def chance(self) -> float:
        return 1.0 / self.params.vocab

    def rows(self, rng: np.random.Generator, n: int, step: int) -> tuple[np.ndarray, np.ndarray]:
        p, t = self.params, self.seq_len
        x = self.noise0 + rng.integers(0, p.noise, (n, t))
        y = np.full((n, t), IGNORE, dtype=np.int64)
        at = np.sort(sample_distinct(rng, n, self.span, p.items), axis=1)
        items = self.content0 + sample_distinct(rng, n, p.vocab, p.items)
        np.put_along_axis(x, at, items, axis=1)
        x[:, t - p.items :] = self.cue0 + np.arange(p.items)
        y[:, t - p.items :] = items
        return x, y
