"""What every synthetic task shares: its small vocabulary, the answer mask, seeded batch streams.

A task turns a random generator into ``(inputs, targets)`` arrays [B, T]: ``targets`` holds the
answer token at answer positions and :data:`IGNORE` everywhere else, so the loss and the accuracy
count answers only. Answers are never fed back as inputs after they are asked.

Batch ``i`` of a stream is drawn from ``numpy.random.default_rng([task, stream, seed, i])``: the
training stream (:data:`TRAIN`) gives batch ``i`` at step ``i`` and validation (:data:`VALIDATION`)
is a separate stream, so a run's data is fixed by its seed and resuming needs only the step.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from cogsim.bounds import Annotated, FieldError, Range

#: a task's own sequence length (default: model.seq_len)
SeqLen = Annotated[int, Range(ge=1)] | None

IGNORE = -100  # the target of positions that are not answers (torch's cross-entropy ignore_index)
TRAIN, VALIDATION, WORLD = 1, 2, 3  # generator streams: training batches, validation batches, fixed worlds


class Vocabulary:
    """A task's symbols by id. Offers the few tokenizer calls the figures use (``decode``,
    ``id_to_token``, ``get_vocab_size``) so a task run's report can label its positions."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def add(self, prefix: str, count: int, names: list[str] | None = None) -> int:
        """Append ``count`` symbols (``prefix0``, ``prefix1``, … unless ``names``); returns the first id."""
        first = len(self.names)
        self.names += names if names is not None else [f"{prefix}{i}" for i in range(count)]
        return first

    def get_vocab_size(self, with_added_tokens: bool = True) -> int:
        return len(self.names)

    def id_to_token(self, i: int) -> str | None:
        return self.names[i] if 0 <= i < len(self.names) else None

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return " ".join(self.names[int(i)] for i in ids)


def check(cond: bool, field: str, message: str) -> None:
    """Reject a layout the run cannot hold (a :class:`~cogsim.bounds.FieldError` on ``field``, so the
    spec layer points at that parameter's line)."""
    if not cond:
        raise FieldError(field, message)


def sample_distinct(rng: np.random.Generator, rows: int, population: int, k: int) -> np.ndarray:
    """[rows, k] distinct integers from ``range(population)`` per row, in random order."""
    return rng.random((rows, population)).argsort(axis=1)[:, :k]


@dataclass
class Context:
    """What a task may take from the run: the model's sequence length, the seed, the step budget."""

    seq_len: int
    seed: int = 0
    steps: int = 300


class Task:
    """Base of the synthetic tasks. Subclasses set ``name``, ``Params`` (a dataclass of YAML
    parameters, ``data: {task: NAME, …}``), build ``self.vocab`` and implement :meth:`rows`."""

    name: ClassVar[str] = ""
    Params: ClassVar[type]
    answer_kind: ClassVar[str] = "answer"  # what an answer position holds, for reports
    #: what :meth:`report` adds to a run's summary: name → (+1 higher is better / −1 lower, label)
    report_metrics: ClassVar[dict[str, tuple[int, str]]] = {}

    def __init__(self, params, ctx: Context) -> None:
        self.params, self.context = params, ctx
        self.seed = ctx.seed % 2**32
        self.seq_len = getattr(params, "seq_len", None) or ctx.seq_len
        self.vocab = Vocabulary()

    def reseeded(self, seed: int) -> Task:
        """This task for a run of another seed: its batches (and the facts of a world) follow the seed."""
        return type(self)(self.params, replace(self.context, seed=seed))

    @property
    def vocab_size(self) -> int:
        return self.vocab.get_vocab_size()

    @property
    def chance(self) -> float:
        """Accuracy of the best answer given without memory of what the task asks about."""
        raise NotImplementedError

    def rows(self, rng: np.random.Generator, n: int, step: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` sequences (inputs, targets), int64 [n, seq_len]; ``step`` is the training step."""
        raise NotImplementedError

    def generator(self, stream: int, index: int) -> np.random.Generator:
        return np.random.default_rng([TASK_IDS[self.name], stream, self.seed, index])

    def batch(self, stream: int, index: int, n: int, step: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Batch ``index`` of ``stream`` (the same arrays every time it is asked for)."""
        return self.rows(self.generator(stream, index), n, index if step is None else step)

    def report(self, rows: list[dict]) -> dict:
        """Task-specific results from the run's metrics rows (``metrics.jsonl``); none by default."""
        return {}


#: stable ids of the tasks in the generator seeds (never renumber: it would change every stream)
TASK_IDS = {"mqar": 11, "facts": 12, "copy": 13, "motifs": 14, "count": 15}
