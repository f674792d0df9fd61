"""Probe texts the figures are drawn on: a snippet of the run's validation split (real text the
model never trained on) and a synthetic text that repeats one passage, so that sequence memories
(HTM, Engram) have something to recognise the second time round."""
from __future__ import annotations

from dataclasses import dataclass

from cogsim.data.corpus import first_validation_text
from cogsim.data.synthetic import VALIDATION
from cogsim.data.tokenizer import EOT

#: the passage repeated by the synthetic probe (plain Python, tokenizes the same on any code corpus)
PATTERN = "for item in items:\n    total += item.size\n"
#: used when the run's corpus cannot be read any more (moved run folder, deleted --data path)
FALLBACK = '''def mean(values):
    """Arithmetic mean of a non-empty sequence."""
    total = 0.0
    for value in values:
        total += value
    return total / len(values)


class Counter:
    def __init__(self):
        self.counts = {}

    def add(self, key):
        self.counts[key] = self.counts.get(key, 0) + 1
        return self.counts[key]
'''
STARTS = ("def ", "class ", "    def ")
#: probes are cut to the model's sequence length and to this many tokens (4 readable rows in a figure)
MAX_TOKENS = 256


@dataclass
class Probe:
    """A probe text cut to the model's sequence length, with its token ids."""

    name: str
    title: str
    text: str
    ids: list[int]


def validation_text(data_path: str | None, val_percent: float, data=None, tokens: int = 4096) -> tuple[str, str]:
    """(text, where) from the validation split: decoded from ``data.val`` when the run's
    :class:`~cogsim.data.tokenizer.TokenData` is at hand, else read from the corpus files."""
    if data is not None and len(data.val):
        text = data.tokenizer.decode([int(i) for i in data.val[:tokens]], skip_special_tokens=False)
        return text.split(EOT)[0], "the validation split"
    text = first_validation_text(data_path, val_percent)
    return (text, "the validation split") if text else (FALLBACK, "a built-in snippet (corpus not readable)")


def snippet(text: str) -> str:
    """From the first line that opens a function or class (else from the start)."""
    for i, line in enumerate(text.splitlines(keepends=True)):
        if line.startswith(STARTS):
            return "".join(text.splitlines(keepends=True)[i:])
    return text


def make_probe(name: str, title: str, text: str, tokenizer, seq_len: int) -> Probe:
    ids = tokenizer.encode(text, add_special_tokens=False).ids[:seq_len]
    return Probe(name, title, tokenizer.decode(ids, skip_special_tokens=False), ids)


def default_probes(tokenizer, seq_len: int, data_path: str | None = None, val_percent: float = 5.0,
                   data=None, text: str | None = None) -> list[Probe]:
    """The probes of a run: the validation snippet (or the user's ``text``) and the repeated pattern,
    each at most ``min(seq_len, MAX_TOKENS)`` tokens."""
    seq_len = min(seq_len, MAX_TOKENS)
    if text is not None:
        first = make_probe("text", "the text given with --text", text, tokenizer, seq_len)
    else:
        val, where = validation_text(data_path, val_percent, data)
        first = make_probe("validation", f"a snippet of {where}", snippet(val), tokenizer, seq_len)
    pattern = PATTERN * max(1, seq_len // 4)
    return [first, make_probe("pattern", "one passage repeated", pattern, tokenizer, seq_len)]


def task_probes(task) -> list[Probe]:
    """The probe of a synthetic-task run: its first validation sequence (at most MAX_TOKENS)."""
    ids = [int(i) for i in task.batch(VALIDATION, 0, 1)[0][0][:MAX_TOKENS]]
    return [Probe("task", f"a {task.name} validation sequence", task.vocab.decode(ids), ids)]
