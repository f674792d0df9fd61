"""Drawing of an architecture graph as layers (tokens on top, head at the bottom).

A small Sugiyama-style layout: layers by longest path, long edges routed through dummy slots so they
pass between boxes instead of through them, barycentre sweeps against crossings, edge ends spread
along box sides with the port names written next to them, feedback edges dashed in side lanes.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, PathPatch  # noqa: E402
from matplotlib.path import Path as MPath  # noqa: E402

from cogsim.graph.build import Plan  # noqa: E402
from cogsim.graph.spec import SOURCE  # noqa: E402

#: colour per node type (memory systems stand out from the backbone)
COLORS = {"input": "#e0e0e0", "embedding": "#cfe2f3", "block": "#d9ead3", "attention": "#d9ead3",
          "feedforward": "#d9ead3", "lm_head": "#cfe2f3", "linear": "#eeeeee", "engram": "#f9cb9c",
          "htm": "#b4a7d6", "snn": "#ffe599", "workspace": "#ea9999"}
BOX_W, BOX_H, SLOT_W, DUMMY_W, LAYER_H = 2.4, 0.8, 3.0, 0.9, 2.0
FEEDBACK = "#c0392b"


def _layout(plan: Plan):
    """Layers with dummy nodes for long edges; returns positions and each edge's route."""
    forward = [e for e in plan.edges if not e.feedback]
    dag = nx.DiGraph()
    dag.add_nodes_from([SOURCE, *plan.nodes])
    dag.add_edges_from((e.src, e.dst) for e in forward)
    depth: dict[str, int] = {}
    for n in nx.topological_sort(dag):
        preds = list(dag.predecessors(n))
        depth[n] = 1 + max(depth[p] for p in preds) if preds else 0
    layers: dict[int, list] = defaultdict(list)
    for n in [SOURCE, *plan.nodes]:
        layers[depth[n]].append(n)
    routes = {}
    for i, e in enumerate(forward):
        chain = [e.src]
        for d in range(depth[e.src] + 1, depth[e.dst]):
            dummy = ("dummy", i, d)
            layers[d].append(dummy)
            chain.append(dummy)
        routes[i] = (e, chain + [e.dst])
    neighbours: dict = defaultdict(lambda: {"up": [], "down": []})
    for _, chain in routes.values():
        for a, b in zip(chain, chain[1:]):
            neighbours[b]["up"].append(a)
            neighbours[a]["down"].append(b)
    order = {d: list(ns) for d, ns in layers.items()}
    for sweep in range(8):  # barycentre ordering, alternating down and up sweeps
        rng = range(1, len(order)) if sweep % 2 == 0 else range(len(order) - 2, -1, -1)
        for d in rng:
            ref = order[d - 1] if sweep % 2 == 0 else order[d + 1]
            rank = {n: i for i, n in enumerate(ref)}
            side = "up" if sweep % 2 == 0 else "down"

            def key(n, i):
                nb = [rank[m] for m in neighbours[n][side] if m in rank]
                return (sum(nb) / len(nb) if nb else i, i)

            current = order[d]
            order[d] = sorted(current, key=lambda n: key(n, current.index(n)))
    pos = {}
    for d, names in order.items():
        widths = [DUMMY_W if isinstance(n, tuple) else SLOT_W for n in names]
        x = -sum(widths) / 2
        for n, w in zip(names, widths):
            pos[n] = (x + w / 2, -d * LAYER_H)
            x += w
    return pos, list(routes.values())


def _curve(points: list[tuple[float, float]]) -> MPath:
    """Vertical S-curves through the points (tangents vertical at every point)."""
    verts, codes = [points[0]], [MPath.MOVETO]
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        my = (y0 + y1) / 2
        verts += [(x0, my), (x1, my), (x1, y1)]
        codes += [MPath.CURVE4] * 3
    return MPath(verts, codes)


def _spread(center: float, count: int) -> list[float]:
    if count == 1:
        return [center]
    span = min(BOX_W * 0.7, 0.45 * (count - 1))
    return [center - span / 2 + span * i / (count - 1) for i in range(count)]


def draw_graph(plan: Plan, path: str | Path, title: str | None = None) -> Path:
    """Render ``plan`` to a PNG at ``path`` and return the path."""
    pos, routes = _layout(plan)
    types = {SOURCE: "input", **{n: i.type for n, i in plan.nodes.items()}}
    # ends of each edge: spread along the bottom of its source and the top of its target
    outgoing, incoming = defaultdict(list), defaultdict(list)
    for k, (e, chain) in enumerate(routes):
        outgoing[e.src].append((pos[chain[1]][0], e.src_port, k))
        incoming[e.dst].append((pos[chain[-2]][0], e.dst_port, k))
    tail, head = {}, {}
    for ends, store, sign in ((outgoing, tail, -1), (incoming, head, 1)):
        for node, items in ends.items():
            mean = defaultdict(list)
            for x, port, _ in items:
                mean[port].append(x)
            # ports ordered by where their edges come from / go to, edges of one port side by side
            items.sort(key=lambda t: (sum(mean[t[1]]) / len(mean[t[1]]), t[1], t[0]))
            xs = _spread(pos[node][0], len(items))
            for x, (_, port, k) in zip(xs, items):
                store[k] = (x, pos[node][1] + sign * BOX_H / 2, port)
    feedback = [e for e in plan.edges if e.feedback]
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    lane0 = max(xs) + BOX_W / 2 + 0.5
    width = max(7.0, (max(xs) - min(xs)) + BOX_W + 1.5 + 0.8 * len(feedback) + (2.2 if feedback else 0))
    height = max(4.0, (max(ys) - min(ys)) + BOX_H + 1.8)
    fig, ax = plt.subplots(figsize=(width * 0.85, height * 0.8), dpi=110)
    for name, (x, y) in pos.items():
        if isinstance(name, tuple):
            continue
        ax.add_patch(FancyBboxPatch((x - BOX_W / 2, y - BOX_H / 2), BOX_W, BOX_H, boxstyle="round,pad=0.04",
                                    fc=COLORS.get(types[name], "#ffffff"), ec="#333333", lw=1.2, zorder=3))
        ax.text(x, y + 0.13, name, ha="center", va="center", fontsize=11, fontweight="bold", zorder=4)
        ax.text(x, y - 0.2, types[name], ha="center", va="center", fontsize=9, color="#444444", zorder=4)
    for k, (e, chain) in enumerate(routes):
        points = [tail[k][:2]] + [pos[n] for n in chain[1:-1]] + [head[k][:2]]
        ax.add_patch(PathPatch(_curve(points[:-1] + [(points[-1][0], points[-1][1] + 0.12)]), fc="none",
                               ec="#555555", lw=1.1, zorder=1))
        ax.add_patch(FancyArrowPatch((points[-1][0], points[-1][1] + 0.13), points[-1], arrowstyle="-|>",
                                     mutation_scale=11, color="#555555", lw=1.1, zorder=2))
    label = dict(fontsize=7.5, zorder=5, bbox=dict(fc="white", ec="none", alpha=0.9, pad=0.3))
    for store, dy, va in ((tail, -0.14, "top"), (head, 0.15, "bottom")):
        groups = defaultdict(list)
        for k, (x, y, port) in store.items():
            groups[(y, port, routes[k][0].src if store is tail else routes[k][0].dst)].append(x)
        for (y, port, _), gx in groups.items():
            ax.text(sum(gx) / len(gx), y + dy, port, ha="center", va=va, color="#1f4e79", **label)
    for i, e in enumerate(feedback):
        (x0, y0), (x1, y1) = pos[e.src], pos[e.dst]
        lane = lane0 + 0.7 * i
        pts = [(x0 + BOX_W / 2, y0), (lane, y0), (lane, y1), (x1 + BOX_W / 2 + 0.02, y1)]
        ax.plot([p[0] for p in pts[:-1]], [p[1] for p in pts[:-1]], ls="--", color=FEEDBACK, lw=1.4, zorder=1)
        ax.add_patch(FancyArrowPatch(pts[-2], pts[-1], arrowstyle="-|>", mutation_scale=12, color=FEEDBACK,
                                     ls="--", lw=1.4, zorder=2))
        ax.text(x1 + BOX_W / 2 + 0.1, y1 + 0.1, f"{e.src_port} → {e.dst_port}", fontsize=7.5, color=FEEDBACK,
                ha="left", va="bottom", zorder=5)
    if feedback:
        ax.text(lane0 + 0.35 * (len(feedback) - 1), max(ys) + 0.5, "feedback\n(previous cycle)", ha="center",
                va="bottom", fontsize=8, color=FEEDBACK)
    ax.set_xlim(min(xs) - BOX_W / 2 - 0.4, max(xs) + BOX_W / 2 + 0.6 + (0.7 * len(feedback) + 1.2 if feedback else 0))
    ax.set_ylim(min(ys) - BOX_H / 2 - 0.5, max(ys) + BOX_H / 2 + (1.0 if feedback else 0.4))
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
