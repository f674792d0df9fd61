"""Drawing of an architecture graph: nodes as labelled boxes in layers (top = tokens, bottom =
head), edges with port labels, feedback edges dashed."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

from cogsim.graph.build import Plan  # noqa: E402
from cogsim.graph.spec import SOURCE  # noqa: E402

#: colour per node type (memory systems stand out from the backbone)
COLORS = {"input": "#e0e0e0", "embedding": "#cfe2f3", "block": "#d9ead3", "attention": "#d9ead3",
          "feedforward": "#d9ead3", "lm_head": "#cfe2f3", "linear": "#eeeeee", "engram": "#f9cb9c",
          "htm": "#b4a7d6", "snn": "#ffe599", "workspace": "#ea9999"}


def _layers(plan: Plan) -> dict[str, int]:
    forward = nx.DiGraph()
    forward.add_nodes_from(plan.graph.nodes)
    forward.add_edges_from((e.src, e.dst) for e in plan.edges if not e.feedback)
    depth = {}
    for node in nx.topological_sort(forward):
        preds = list(forward.predecessors(node))
        depth[node] = 1 + max(depth[p] for p in preds) if preds else 0
    return depth


def _positions(plan: Plan) -> dict[str, tuple[float, float]]:
    depth = _layers(plan)
    by_layer: dict[int, list[str]] = {}
    order = [SOURCE, *plan.nodes]
    for node in order:
        by_layer.setdefault(depth[node], []).append(node)
    pos = {}
    for layer, names in by_layer.items():
        for i, name in enumerate(names):
            pos[name] = ((i - (len(names) - 1) / 2) * 3.2, -layer * 1.6)
    return pos


def draw_graph(plan: Plan, path: str | Path, title: str | None = None) -> Path:
    """Render ``plan`` to a PNG at ``path`` and return the path."""
    pos = _positions(plan)
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    width = max(6.0, (max(xs) - min(xs)) * 0.9 + 5.0)
    height = max(4.0, (max(ys) - min(ys)) * 0.75 + 2.5)
    fig, ax = plt.subplots(figsize=(width, height), dpi=110)
    box_w, box_h = 2.3, 0.8
    types = {SOURCE: "input", **{n: i.type for n, i in plan.nodes.items()}}
    for name, (x, y) in pos.items():
        ax.add_patch(FancyBboxPatch((x - box_w / 2, y - box_h / 2), box_w, box_h, boxstyle="round,pad=0.05",
                                    fc=COLORS.get(types[name], "#ffffff"), ec="#333333", lw=1.2, zorder=2))
        ax.text(x, y + 0.12, name, ha="center", va="center", fontsize=11, fontweight="bold", zorder=3)
        ax.text(x, y - 0.2, types[name], ha="center", va="center", fontsize=9, color="#333333", zorder=3)
    pair_count: dict[tuple[str, str], int] = {}
    for e in plan.edges:
        (x0, y0), (x1, y1) = pos[e.src], pos[e.dst]
        k = pair_count.get((e.src, e.dst), 0)
        pair_count[(e.src, e.dst)] = k + 1
        straight = abs(x0 - x1) < 1e-6 and abs(abs(y0 - y1) - 1.6) < 1e-6 and not e.feedback and k == 0
        rad = 0.0 if straight else (0.45 if e.feedback else 0.2 + 0.15 * k) * (1 if x1 >= x0 else -1)
        style = dict(color="#c0392b", ls="--", lw=1.4) if e.feedback else dict(color="#555555", lw=1.1)
        start = (x0, y0 - box_h / 2) if y0 > y1 else (x0, y0 + box_h / 2)
        end = (x1, y1 + box_h / 2) if y0 > y1 else (x1, y1 - box_h / 2)
        if e.feedback:
            start, end = (x0 + box_w / 2, y0), (x1 + box_w / 2, y1)
            rad = 0.5
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12,
                                     connectionstyle=f"arc3,rad={rad}", zorder=1, **style))
        label = f"{e.src_port} → {e.dst_port}" + (" (feedback)" if e.feedback else "")
        mx, my = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
        mx += -rad * (end[1] - start[1]) * 0.5
        my += rad * (end[0] - start[0]) * 0.5
        ax.text(mx, my, label, fontsize=8, ha="center", va="center", color=style["color"], zorder=4,
                bbox=dict(fc="white", ec="none", alpha=0.85, pad=0.5))
    ax.set_xlim(min(xs) - box_w, max(xs) + box_w + (2.0 if any(e.feedback for e in plan.edges) else 0.5))
    ax.set_ylim(min(ys) - 1.0, max(ys) + 0.9)
    ax.set_aspect("equal")
    ax.axis("off")
    s = plan.sizes
    ax.set_title(title or f"{plan.spec.name}  (d_model {s.d_model}, vocab {s.vocab_size}, cycles {plan.cycles})",
                 fontsize=12)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
