"""SNN figure: a spike raster of a layer's neurons over the probe text (every spiking step of
every token), the layer's firing rate per token, and the distribution of firing rates over neurons."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from cogsim.viz.common import (TOKEN_WIDTH, cycle_note, labels_height, last_cycle, row_width, rows_of, save,
                               set_position_axis, set_token_axis, token_rows_figure)

#: neurons shown in the raster
RASTER_NEURONS = 64


def shown_neurons(counts: np.ndarray, limit: int = RASTER_NEURONS) -> np.ndarray:
    """Neurons for the raster, most active first: every neuron that spiked, or ``limit`` of them
    evenly spread over their ranking by spike count (so saturated and sparse neurons both show);
    silent neurons only when none spiked."""
    order = np.lexsort((np.arange(len(counts)), -counts))  # most spikes first, ties by index
    active = order[counts[order] > 0]
    pool = active if len(active) else order
    if len(pool) <= limit:
        return pool
    return pool[np.unique(np.linspace(0, len(pool) - 1, limit).round().astype(int))]


def plot_spikes(traces: dict, labels: Sequence[str], path: str | Path, title: str, cycles: int = 1) -> Path:
    """``traces``: one SNN node's traces (``spikes`` [1,T,steps,N], ``firing_rate`` [N], ``rate`` [1,T])."""
    key, cycle = last_cycle(traces, "spikes")
    spikes = traces[key][0].numpy().astype(bool)  # [T, S, N]
    t, steps, n = spikes.shape
    neurons = shown_neurons(spikes.sum((0, 1)))
    rate_key = last_cycle(traces, "firing_rate")[0]
    per_neuron = (traces[rate_key].float().numpy() if rate_key else spikes.mean((0, 1)))
    per_token = spikes.mean((1, 2))  # [T]
    rows = rows_of(t)
    width = row_width(rows)
    raster_h, hist_h = 0.03 * len(neurons) + 0.5, 1.6  # inches
    fig, axes, (fig_w, fig_h) = token_rows_figure(len(rows), [raster_h, 0.7], width, left=1.5, right=0.5,
                                                  top=0.7, bottom=hist_h + 0.9, labels=labels_height(labels))
    rate_max = max(float(per_token.max()), 1e-3)
    ticks = np.arange(0, len(neurons), max(1, len(neurons) // 6))
    spiking = int((spikes.sum((0, 1)) > 0).sum())
    what = (f"(all {n})" if len(neurons) == n else f"({len(neurons)} of {spiking} spiking,\nby activity)"
            if len(neurons) < spiking else f"(the {spiking} spiking\nof {n}, by activity)")
    for (s, e), (ax, ax2) in zip(rows, axes):
        raster = spikes[s:e][:, :, neurons].reshape((e - s) * steps, len(neurons)).T  # [neurons, time]
        ax.imshow(raster, aspect="auto", cmap="Greys", vmin=0, vmax=1, interpolation="nearest",
                  extent=(-0.5, e - s - 0.5, len(neurons) - 0.5, -0.5))
        if steps > 1:  # token boundaries
            ax.vlines(np.arange(e - s + 1) - 0.5, -0.5, len(neurons) - 0.5, color="#c6dbef", lw=0.4, zorder=0)
        ax.set_xlim(-0.5, width / TOKEN_WIDTH - 0.5)
        ax.set_yticks(ticks)
        ax.set_yticklabels([str(neurons[i]) for i in ticks], fontsize=7)
        ax.set_ylabel(f"neuron id\n{what}", fontsize=8)
        set_position_axis(ax, s, e)
        ax2.bar(range(e - s), per_token[s:e], width=0.8, color="#e6550d")
        ax2.set_xlim(-0.5, width / TOKEN_WIDTH - 0.5)
        ax2.set_ylim(0, rate_max * 1.05)
        ax2.set_ylabel("rate", fontsize=8)
        ax2.tick_params(axis="y", labelsize=7)
        set_token_axis(ax2, labels, s, e)
    hist = fig.add_axes((1.5 / fig_w, 0.6 / fig_h, min(6.0, width * 0.5) / fig_w, hist_h / fig_h))
    hist.hist(per_neuron, bins=min(40, max(5, n // 4)), range=(0, max(1e-3, float(per_neuron.max()))),
              color="#3182bd", log=True)
    hist.set_xlabel("firing rate of a neuron (spikes per step, over the probe)", fontsize=8)
    hist.set_ylabel("neurons (log scale)", fontsize=8)
    hist.tick_params(labelsize=7)
    silent = int((per_neuron == 0).sum())
    hist.set_title(f"{n} neurons: mean rate {per_neuron.mean():.3f}, {silent} silent", fontsize=9, loc="left")
    sub = f"{steps} spiking steps per token; black = spike" if steps > 1 else "black = spike"
    fig.suptitle(f"{title}{cycle_note(cycle, cycles)}   ({sub})", fontsize=12, x=0.02, ha="left", y=1 - 0.1 / fig_h,
                 va="top")
    return save(fig, path)
