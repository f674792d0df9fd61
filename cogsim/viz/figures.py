"""The figures of a run: trace the model on the probe texts, then draw every figure that applies to
the architecture. A figure that fails is reported and skipped; the others are kept."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from cogsim.viz.common import cycle_note, last_cycle, token_labels, token_strings
from cogsim.viz.probes import Probe

log = logging.getLogger("cogsim.viz")
CYCLES_NOTE = " With several cognitive cycles, the last cycle is shown (the one the head reads)."


@dataclass
class Figure:
    """A PNG written for the report, with a title and a caption saying how to read it."""

    path: Path
    title: str
    caption: str
    overview: bool = False  # shown beside the run summary rather than in the list of figures


@dataclass
class Context:
    """What the figure builders draw from."""

    model: object  # CognitiveModel
    tokenizer: object
    probes: list[Probe]
    metrics: list[dict]
    fig_dir: Path
    traces: dict[str, dict] = field(default_factory=dict)  # probe name → traces
    failures: list[str] = field(default_factory=list)

    def nodes(self, type_name: str) -> list[str]:
        return [n for n, info in self.model.plan.nodes.items() if info.type == type_name]

    def traced(self, probe: Probe, type_name: str, key: str):
        """(node, traces) of every node of ``type_name`` that recorded ``key`` on ``probe``."""
        for node in self.nodes(type_name):
            traces = self.traces[probe.name].get(node)
            if traces and key in traces:
                yield node, traces

    def probe(self, name: str) -> Probe:
        return next(p for p in self.probes if p.name == name)

    def labels(self, probe: Probe) -> list[str]:
        return token_labels(token_strings(self.tokenizer, probe.ids))

    @property
    def cycles(self) -> int:
        return self.model.plan.cycles


def trace_probes(ctx: Context) -> None:
    """Run every probe with the recorder on (eval mode, on the model's device)."""
    model = ctx.model
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        for probe in ctx.probes:
            if not probe.ids:
                continue
            _, ctx.traces[probe.name] = model.trace(torch.tensor([probe.ids], device=device))
    finally:
        model.train(was_training)


# ---- builders: each returns the figures it drew ([] when it does not apply) -----------------------
def graph_figure(ctx: Context) -> list[Figure]:
    from cogsim.viz.graph import draw_graph

    path = draw_graph(ctx.model.plan, ctx.fig_dir / "graph.png")
    return [Figure(path, "Architecture graph",
                   "Every node with its type, from the token input (top) to the LM head (bottom). Each arrow "
                   "is an edge, labelled with the port it leaves and the port it enters; dashed red arrows are "
                   "feedback edges (they carry the previous cognitive cycle's value). Colours: backbone "
                   "green/blue, Engram orange, SNN yellow, HTM purple, workspace red.", overview=True)]


def curves_figure(ctx: Context) -> list[Figure]:
    from cogsim.viz.curves import has_curves, plot_curves

    if not has_curves(ctx.metrics):
        return []
    path = plot_curves(ctx.metrics, ctx.fig_dir / "curves.png", f"Training of {ctx.model.plan.spec.name}")
    right = ("Right: answer accuracy of the synthetic task, online on each training batch before its update "
             "and on the validation stream; loss and accuracy count answer positions only."
             if ctx.model.plan.spec.task is not None else
             "Right: validation bits per byte, comparable across tokenizers; lower is better.")
    return [Figure(path, "Training curves", "Left: training loss (mean over each logging window) and validation "
                   f"loss, in nats per token. {right}")]


def _first_probe(ctx: Context) -> Probe | None:
    return ctx.probes[0] if ctx.probes and ctx.probes[0].name in ctx.traces else None


def workspace_figures(ctx: Context) -> list[Figure]:
    from cogsim.viz.workspace import candidate_names, plot_workspace

    probe, out = _first_probe(ctx), []
    if probe is None:
        return out
    for node, traces in ctx.traced(probe, "workspace", "bids"):
        path = plot_workspace(traces, ctx.labels(probe), candidate_names(ctx.model, node),
                              ctx.fig_dir / f"workspace_{node}.png", f"Workspace '{node}' on {probe.title}",
                              ctx.cycles)
        out.append(Figure(path, f"Workspace competition ({node})",
                          "Top of each row: the bid of every candidate module at every position (colour; the bids "
                          "of a position sum to 1), circles mark the winners that write into the workspace at that "
                          "position. Bottom: which candidate holds each slot — the module whose writes, decayed "
                          "by the slot's forget gate, make up most of the slot (grey: the slot's initial content "
                          "still dominates). Positions run left to right under the probe's tokens "
                          "(↵ newline, · space); long texts wrap into several rows."
                          + CYCLES_NOTE * (ctx.cycles > 1)))
    return out


def engram_figures(ctx: Context) -> list[Figure]:
    from cogsim.viz.engram import gate_rows, plot_gate_heatmap, plot_gate_text

    probe, nodes = _first_probe(ctx), ctx.nodes("engram")
    if probe is None or not nodes:
        return []
    traces = ctx.traces[probe.name]
    gates, names = gate_rows(traces, nodes)
    if not len(gates):
        return []
    note = cycle_note(max(last_cycle(traces.get(n, {}), "gate")[1] for n in nodes), ctx.cycles)
    heat = plot_gate_heatmap(gates, names, ctx.labels(probe), ctx.fig_dir / "engram_gate.png",
                             f"Engram gate on {probe.title}{note}")
    text = plot_gate_text(gates.mean(0), token_strings(ctx.tokenizer, probe.ids), ctx.fig_dir / "engram_gate_text.png",
                          f"Engram gate over the text of {probe.title}{note}")
    return [Figure(heat, "Engram gate per token",
                   "How much of the retrieved n-gram memory each Engram layer adds at each token: one row per "
                   "Engram node and gate branch, one column per token of the probe (↵ newline, · space). The gate "
                   "compares the memory vector with the hidden state; bright = the memory agrees with the "
                   "context and is added, dark = it is suppressed. The colour scale spans 0–1 once the gates "
                   "use it, else the observed range (read the colour bar)." + CYCLES_NOTE * (ctx.cycles > 1)),
            Figure(text, "Engram gate over the text",
                   "The same probe laid out as it reads, each token shaded by its gate (mean over layers and "
                   "branches): bright tokens continue n-grams the memory recognises.")]


def spike_figures(ctx: Context) -> list[Figure]:
    from cogsim.viz.spikes import plot_spikes

    probe, out = _first_probe(ctx), []
    if probe is None:
        return out
    for node, traces in ctx.traced(probe, "snn", "spikes"):
        path = plot_spikes(traces, ctx.labels(probe), ctx.fig_dir / f"spikes_{node}.png",
                           f"Spiking layer '{node}' on {probe.title}", ctx.cycles)
        out.append(Figure(path, f"Spike raster ({node})",
                          "Top of each row: spikes of the layer's neurons (rows: the neurons that spiked, most active "
                          "on top; at most 64, spread over that ranking) over time; every token of the probe spans "
                          "the layer's spiking steps (columns between the thin blue lines). "
                          "Below it: the layer's firing rate per token (fraction of neurons × steps that spiked). "
                          "Bottom: how firing rates are spread over all neurons of the layer; many silent or "
                          "saturated neurons mean the layer's input scale is off." + CYCLES_NOTE * (ctx.cycles > 1)))
    return out


def htm_figures(ctx: Context) -> list[Figure]:
    from cogsim.viz.htm import plot_htm

    out = []
    probe = next((p for p in ctx.probes if p.name == "pattern" and p.name in ctx.traces), _first_probe(ctx))
    if probe is None:
        return out
    for node, traces in ctx.traced(probe, "htm", "anomaly"):
        params = ctx.model.nodes[node].params
        path = plot_htm(traces, ctx.labels(probe), ctx.fig_dir / f"htm_{node}.png", f"HTM '{node}' on {probe.title}",
                        getattr(params, "active_columns", None))
        learns = getattr(params, "learn", None) == "always"
        out.append(Figure(path, f"HTM prediction and anomaly ({node})",
                          "Top: raw anomaly per token — the fraction of the token's active columns that the "
                          "temporal memory did not predict from the tokens before it (1 = complete surprise, always "
                          "1 at the first token). Below: how many columns the memory predicts for the next token "
                          "(dashed: the columns a token activates). The probe repeats one passage: "
                          + ("the memory learns as it reads (learn: always), so anomaly should fall once the "
                             "passage has been seen." if learns else
                             "the memory does not learn at evaluation (learn: train), so what it predicts comes "
                             "from training.")))
    return out


BUILDERS: list[tuple[str, Callable[[Context], list[Figure]]]] = [
    ("architecture graph", graph_figure), ("training curves", curves_figure),
    ("workspace", workspace_figures), ("Engram gate", engram_figures), ("spike raster", spike_figures),
    ("HTM", htm_figures),
]


def _failed(ctx: Context, what: str, e: Exception) -> None:
    message = f"{what}: {type(e).__name__}: {e}".splitlines()[0]
    ctx.failures.append(message)
    log.warning("cogsim viz: warning: %s (the other figures are kept)", message)


def make_figures(ctx: Context) -> list[Figure]:
    """Trace the probes and draw every figure that applies; failures go to ``ctx.failures``."""
    import matplotlib.pyplot as plt

    try:
        trace_probes(ctx)
    except Exception as e:  # noqa: BLE001 - a broken trace must not lose the graph and curves
        _failed(ctx, "tracing the probe texts", e)
    figures: list[Figure] = []
    for what, build in BUILDERS:
        try:
            figures += build(ctx)
        except Exception as e:  # noqa: BLE001 - one figure's failure must not lose the others
            plt.close("all")
            _failed(ctx, f"{what} figure", e)
    return figures


__all__ = ["BUILDERS", "Context", "Figure", "make_figures"]
