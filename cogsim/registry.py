"""Component type name → class. Built-ins are imported on first use; third-party packages register
through the entry-point group ``cogsim.components`` (name = type name, value = ``module:Class``)."""
from __future__ import annotations

import importlib
from importlib import metadata

from cogsim.component import Component

#: type name → "module:Class" of the built-in components (imported lazily).
BUILTINS = {
    "embedding": "cogsim.backbone:TokenEmbedding",
    "attention": "cogsim.backbone:Attention",
    "feedforward": "cogsim.backbone:FeedForward",
    "block": "cogsim.backbone:Block",
    "linear": "cogsim.backbone:Linear",
    "lm_head": "cogsim.backbone:LMHead",
    "engram": "cogsim.engram.component:EngramComponent",
    "htm": "cogsim.htm.component:HTMComponent",
    "snn": "cogsim.snn.component:SNNComponent",
    "workspace": "cogsim.workspace.component:WorkspaceComponent",
}

ENTRY_POINT_GROUP = "cogsim.components"


class Registry:
    """A lookup of component classes; one per process is enough but nothing forces that."""

    def __init__(self) -> None:
        self._classes: dict[str, type[Component]] = {}
        self._paths: dict[str, str] = dict(BUILTINS)
        self._entry_points_loaded = False

    def register(self, cls: type[Component], name: str | None = None) -> type[Component]:
        name = name or cls.type_name
        if not name:
            raise ValueError(f"{cls.__name__} has no type_name")
        self._classes[name] = cls
        return cls

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            self._paths.setdefault(ep.name, ep.value)

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(set(self._paths) | set(self._classes))

    def available(self, name: str) -> bool:
        """Whether ``name`` is known and importable (a memory system may not be built yet)."""
        try:
            self.get(name)
            return True
        except (KeyError, ImportError):
            return False

    def get(self, name: str) -> type[Component]:
        if name in self._classes:
            return self._classes[name]
        self._load_entry_points()
        if name not in self._paths:
            raise KeyError(name)
        module, _, attr = self._paths[name].partition(":")
        cls = getattr(importlib.import_module(module), attr)
        if not (isinstance(cls, type) and issubclass(cls, Component)):
            raise TypeError(f"{self._paths[name]} is not a cogsim Component")
        return self.register(cls, name)


registry = Registry()
