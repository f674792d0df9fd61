"""Synthetic memory tasks trained directly (``data: {task: NAME, …}`` or ``cogsim run --task``):
each brings its own small vocabulary and generates fresh batches from the seed. See docs/tasks.md."""
from __future__ import annotations

from cogsim.data.synthetic.base import IGNORE, TRAIN, VALIDATION, Context, Task, Vocabulary
from cogsim.data.synthetic.count import Count
from cogsim.data.synthetic.facts import Facts
from cogsim.data.synthetic.motifs import Motifs
from cogsim.data.synthetic.mqar import Mqar
from cogsim.data.synthetic.selective_copy import SelectiveCopy

TASKS: dict[str, type[Task]] = {cls.name: cls for cls in (Mqar, Facts, SelectiveCopy, Motifs, Count)}


def make_task(name: str, params, ctx: Context) -> Task:
    """The task ``name`` with typed ``params`` (its ``Params``) for a run (``ValueError`` if it cannot be laid out)."""
    return TASKS[name](params, ctx)


__all__ = ["IGNORE", "TASKS", "TRAIN", "VALIDATION", "Context", "Task", "Vocabulary", "make_task"]
