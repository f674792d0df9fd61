"""cogsim: a brain-inspired cognitive architecture simulator (Engram, HTM, SNN, global workspace).

``cogsim.load_architecture(path)`` validates an architecture file; ``cogsim.build_model(path,
vocab_size=…)`` returns the model; ``model.trace(ids)`` runs it with recording on.
"""
__version__ = "0.1.0"

from cogsim.api import build_model, load_architecture  # noqa: E402
from cogsim.errors import CogsimError, SpecError  # noqa: E402
from cogsim.trace import Recorder  # noqa: E402

__all__ = ["build_model", "load_architecture", "CogsimError", "SpecError", "Recorder", "__version__"]
