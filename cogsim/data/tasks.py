"""Probe tasks that separate lookup from reasoning (docs/design.md §7), generated deterministically.

``recall``, ``needle``, ``vartrack`` and ``anomaly`` write small Python-looking texts with the scored
spans marked as character offsets. Seeded streams keep training text and probes apart, and size
levels let every task fit the model's context.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

TASKS = ("recall", "needle", "vartrack", "anomaly")
TRAIN_STREAM, PROBE_STREAM = 1, 2
_TASK_ID = {name: i + 1 for i, name in enumerate(TASKS)}

#: the fixed world of facts: name parts and the seed that draws names and values
FACT_PREFIXES = ("ZEPHYR", "CASCADE", "NIMBUS", "ORBIT", "QUARTZ", "EMBER", "GLACIER", "HARBOR",
                 "LANTERN", "MERIDIAN", "PRISM", "SUMMIT", "TUNDRA", "VERTEX", "WILLOW", "AURORA")
FACT_SUFFIXES = ("LIMIT", "OFFSET", "TIMEOUT", "RATIO", "DEPTH", "WIDTH", "RETRIES", "THRESHOLD")
FACT_SEED = 20240611
N_FACTS = 32

#: dictionary keys of the needle task and words of the anomaly streams (common code words)
KEYS = ("name", "value", "size", "count", "index", "data", "path", "file", "line", "text", "type", "item",
        "mode", "state", "user", "node", "time", "result", "error", "level", "start", "offset", "width",
        "color", "label", "group", "field", "token", "block", "title", "source", "target")
WORDS = ("self", "return", "None", "True", "False", "import", "def", "class", "for", "while", "if", "else",
         "with", "try", "pass", "break", "list", "dict", "str", "int", "len", "print", "range", "open")
#: variable names of the tracking task
VARIABLES = tuple("abcdefghkmnpqrstuvwxyz")
#: filler lines of the haystack (plain statements that mention no key)
FILLER = ("total += step", "count = count + 1", "if flag:\n    flag = False", "items.append(value)",
          "result = None", "step *= 2", "buffer.clear()", "pos = pos - 1", "done = True", "log.debug(msg)")

#: size levels per task, largest first (see the generators for what the numbers mean)
LEVELS: dict[str, tuple] = {
    "recall": (12, 8, 6, 4, 2, 1),  # facts in the document (the asked one last)
    "needle": ((6, 2, 3), (5, 1, 3), (4, 1, 2), (3, 1, 2), (3, 0, 2), (2, 0, 2), (1, 0, 1)),  # pairs, filler per pair, queries
    "vartrack": ((4, 2), (3, 2), (3, 1), (2, 1), (1, 1), (1, 0)),  # hops, distractor chains
    "anomaly": (96, 72, 48, 32, 24, 16),  # words in the stream
}
#: the level probes use where it fits (moderate: a small model trained minutes can get above chance)
STANDARD = {"recall": 6, "needle": (4, 1, 2), "vartrack": (2, 1), "anomaly": 96}


@dataclass(frozen=True)
class Instance:
    """One generated text. ``spans`` are the scored character spans [start, end): the answers of a
    question task; for an anomaly stream, every word after its clean first third, with ``labels``
    1 for the injected (anomalous) words and 0 for the others."""

    task: str
    text: str
    spans: tuple[tuple[int, int], ...]
    level: object
    labels: tuple[int, ...] | None = None

    def answers(self) -> list[str]:
        return [self.text[a:b] for a, b in self.spans]


@dataclass(frozen=True)
class Fact:
    name: str
    value: int

    def line(self) -> str:
        return f"{self.name} = {self.value}\n"


def facts(count: int = N_FACTS, seed: int = FACT_SEED) -> list[Fact]:
    """The fixed fact world: ``count`` distinct constant names with 3-digit values."""
    if not 0 < count <= len(FACT_PREFIXES) * len(FACT_SUFFIXES):
        raise ValueError(f"count: must be in 1..{len(FACT_PREFIXES) * len(FACT_SUFFIXES)}, got {count}")
    rng = np.random.default_rng(seed)
    names = [f"{p}_{s}" for p in FACT_PREFIXES for s in FACT_SUFFIXES]
    chosen = rng.choice(len(names), size=count, replace=False)
    values = rng.integers(100, 1000, size=count)
    return [Fact(names[i], int(v)) for i, v in zip(chosen, values)]


class _Writer:
    """Builds a text piece by piece, remembering the character spans of the scored pieces."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.spans: list[tuple[int, int]] = []

    def add(self, text: str, scored: bool = False) -> None:
        if scored:
            self.spans.append((self.length, self.length + len(text)))
        self.parts.append(text)
        self.length += len(text)

    def text(self) -> str:
        return "".join(self.parts)


def recall(rng: np.random.Generator, size: int, index: int, world: Sequence[Fact]) -> Instance:
    """A settings block of ``size`` facts; the last one (fact ``index`` of the world, so consecutive
    indices ask every fact in turn) is asked: the text ends with its value as the scored span."""
    target = world[index % len(world)]
    others = [f for f in world if f.name != target.name]
    context = [others[i] for i in rng.choice(len(others), size=min(size - 1, len(others)), replace=False)]
    w = _Writer()
    w.add("# settings\n")
    for fact in context:
        w.add(fact.line())
    w.add(f"{target.name} =")
    w.add(f" {target.value}", scored=True)
    w.add("\n")
    return Instance("recall", w.text(), tuple(w.spans), size)


def needle(rng: np.random.Generator, level: tuple[int, int, int]) -> Instance:
    """``pairs`` assignments ``table["key"] = value`` (distinct keys, distinct 2-digit values), each
    followed by ``filler`` haystack lines, then ``queries`` asserts on distinct keys in random order."""
    pairs, filler, queries = level
    keys = [KEYS[i] for i in rng.choice(len(KEYS), size=pairs, replace=False)]
    values = [int(v) for v in rng.choice(np.arange(10, 100), size=pairs, replace=False)]
    w = _Writer()
    w.add("table = {}\n")
    for key, value in zip(keys, values):
        w.add(f'table["{key}"] = {value}\n')
        for j in rng.choice(len(FILLER), size=filler, replace=False):
            w.add(FILLER[j] + "\n")
    for q in rng.choice(pairs, size=min(queries, pairs), replace=False):
        w.add(f'assert table["{keys[q]}"] ==')
        w.add(f" {values[q]}", scored=True)
        w.add("\n")
    return Instance("needle", w.text(), tuple(w.spans), level)


def vartrack(rng: np.random.Generator, level: tuple[int, int]) -> Instance:
    """Chains ``v0 = number; v1 = v0; …; v_hops = v_{hops-1}`` (one asked, ``distractors`` not),
    interleaved at random while keeping each chain's order; asks the end of the first chain."""
    hops, distractors = level
    chains = distractors + 1
    names = [VARIABLES[i] for i in rng.choice(len(VARIABLES), size=chains * (hops + 1), replace=False)]
    values = [int(v) for v in rng.choice(np.arange(10, 100), size=chains, replace=False)]
    lines = []
    for c in range(chains):
        var = names[c * (hops + 1) : (c + 1) * (hops + 1)]
        lines.append([f"{var[0]} = {values[c]}\n"] + [f"{var[h + 1]} = {var[h]}\n" for h in range(hops)])
    order = np.repeat(np.arange(chains), hops + 1)
    rng.shuffle(order)
    w = _Writer()
    taken = [0] * chains
    for c in order:
        w.add(lines[c][taken[c]])
        taken[c] += 1
    w.add(f"assert {names[hops]} ==")
    w.add(f" {values[0]}", scored=True)
    w.add("\n")
    return Instance("vartrack", w.text(), tuple(w.spans), level)


def anomaly(rng: np.random.Generator, words: int) -> Instance:
    """A comment line of ``words`` words repeating a pattern of 3–5 distinct words. The first third
    of the stream (at least two periods) is clean: the probation in which a detector learns the
    pattern. After it about one word in 24 (at least one, never two in a row) is replaced by a word
    that is not in the pattern. Every word after the probation is a scored span, labelled 1 when it
    was replaced."""
    period = int(rng.integers(3, 6))
    pool = rng.permutation(len(WORDS))
    pattern, outside = [WORDS[i] for i in pool[:period]], [WORDS[i] for i in pool[period:]]
    stream = [pattern[i % period] for i in range(words)]
    first = max(2 * period, words // 3)
    count = max(1, words // 24)
    candidates = np.arange(first, words)
    chosen: list[int] = []
    for p in rng.permutation(candidates):
        if len(chosen) == count:
            break
        if all(abs(int(p) - c) > 1 for c in chosen):
            chosen.append(int(p))
    for p in chosen:
        stream[p] = outside[int(rng.integers(len(outside)))]
    w = _Writer()
    w.add("#")
    for i, word in enumerate(stream):
        w.add(" " + word, scored=i >= first)
    w.add("\n")
    marked = set(chosen)
    labels = tuple(int(i in marked) for i in range(first, words))
    return Instance("anomaly", w.text(), tuple(w.spans), words, labels)


def generate(task: str, level, seed: int, index: int, stream: int = PROBE_STREAM,
             world: Sequence[Fact] | None = None) -> Instance:
    """Instance ``index`` of ``task`` at ``level``: the same arguments always give the same text."""
    if task not in _TASK_ID:
        raise ValueError(f"task: unknown task {task!r}; expected one of {', '.join(TASKS)}")
    rng = np.random.default_rng([_TASK_ID[task], stream, seed, index])
    if task == "recall":
        return recall(rng, level, index, world if world is not None else facts())
    return {"needle": needle, "vartrack": vartrack, "anomaly": anomaly}[task](rng, level)


def instances(task: str, level, count: int, seed: int = 0, stream: int = PROBE_STREAM) -> list[Instance]:
    world = facts() if task == "recall" else None
    return [generate(task, level, seed, i, stream, world) for i in range(count)]


def fit_level(task: str, count_tokens: Callable[[list[str]], list[int]], max_tokens: int, seed: int = 0,
              stream: int = PROBE_STREAM, sample: int = 32, largest: object = "standard") -> object | None:
    """The first level of ``task``, from ``largest`` (default: the standard level; None: the largest
    of all) down, whose first ``sample`` instances all fit in ``max_tokens`` tokens (``count_tokens``
    maps texts to token counts), or None when even the smallest does not fit."""
    levels = LEVELS[task]
    top = STANDARD[task] if largest == "standard" else (levels[0] if largest is None else largest)
    for level in levels[levels.index(top):]:
        texts = [inst.text for inst in instances(task, level, sample, seed, stream)]
        if max(count_tokens(texts)) <= max_tokens:
            return level
    return None


def training_documents(count_tokens: Callable[[list[str]], list[int]], max_tokens: int, count: int,
                       seed: int) -> list[Instance]:
    """``count`` training instances, cycling through the tasks, each at a level drawn uniformly from
    all levels that fit ``max_tokens`` (short and long versions of every format, the probes'
    standard level among them); recall documents end with their fact stated, like the probes ask it."""
    fitting = {}
    for task in TASKS:
        largest = fit_level(task, count_tokens, max_tokens, seed, TRAIN_STREAM, sample=8, largest=None)
        if largest is not None:
            fitting[task] = LEVELS[task][LEVELS[task].index(largest):]
    if not fitting:
        return []
    names = sorted(fitting, key=TASKS.index)
    world = facts()
    chooser = np.random.default_rng([0, TRAIN_STREAM, seed])
    out = []
    for i in range(count):
        task = names[i % len(names)]
        levels = fitting[task]
        level = levels[int(chooser.integers(len(levels)))]
        out.append(generate(task, level, seed, i, TRAIN_STREAM, world))
    return out


__all__ = ["FILLER", "Fact", "Instance", "KEYS", "LEVELS", "N_FACTS", "PROBE_STREAM", "STANDARD", "TASKS", "TRAIN_STREAM",
           "WORDS", "anomaly", "facts", "fit_level", "generate", "instances", "needle", "recall",
           "training_documents", "vartrack"]
