"""``cogsim bench workspace``: the workspace's forward+backward against layers of similar size."""
from cogsim.workspace.bench import add_arguments, run  # noqa: F401
