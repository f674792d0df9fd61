"""Global workspace (working memory): K slots, top-k competition for writing, broadcast back."""
from cogsim.workspace.competition import Competition, compete
from cogsim.workspace.component import WorkspaceComponent, WorkspaceParams
from cogsim.workspace.recurrence import linear_scan, linear_scan_loop

__all__ = [
    "Competition", "compete", "WorkspaceComponent", "WorkspaceParams", "linear_scan", "linear_scan_loop",
]
