"""cogsim: a brain-inspired cognitive architecture simulator (Engram, HTM, SNN, global workspace)."""
__version__ = "0.1.0"
