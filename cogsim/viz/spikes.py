"""SNN figure: a spike raster of a layer's neurons over the probe text (every spiking step of
every token), the layer's firing rate per token, and the distribution of firing rates over neurons."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

from cogsim.viz.common import TOKEN_WIDTH, cycle_note, last_cycle, rows_of, save, set_position_axis, set_token_axis

#: neurons shown in the raster (the most active ones, in index order)
RASTER_NEURONS = 64


def shown_neurons(counts: np.ndarray, limit: int = RASTER_NEURONS) -> np.ndarray:
    """Indices of the ``limit`` neurons with the most spikes (ties: lower index), sorted."""
    order = np.lexsort((np.arange(len(counts)), -counts))
    return np.sort(order[:limit])


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
    width = max(e - s for s, e in rows)
    raster_h, rate_h, labels_h, hist_h = 0.03 * len(neurons) + 0.5, 0.7, 1.2, 1.6  # inches
    fig_w = 2.4 + width * TOKEN_WIDTH
    fig_h = 0.7 + len(rows) * (raster_h + 0.1 + rate_h + labels_h) + hist_h + 0.6
    fig = plt.figure(figsize=(fig_w, fig_h))
    heights = [raster_h + 0.1 + rate_h] * len(rows) + [hist_h]
    outer = fig.add_gridspec(len(rows) + 1, 1, height_ratios=heights, hspace=labels_h / np.mean(heights), left=1.5 / fig_w, right=1 - 0.9 / fig_w,
                             top=1 - 0.7 / fig_h, bottom=0.6 / fig_h)
    rate_max = max(float(per_token.max()), 1e-3)
    ticks = np.arange(0, len(neurons), max(1, len(neurons) // 6))
    for r, (s, e) in enumerate(rows):
        inner = outer[r].subgridspec(2, 1, height_ratios=[raster_h, rate_h], hspace=0.1 / ((raster_h + rate_h) / 2))
        ax = fig.add_subplot(inner[0])
        raster = spikes[s:e][:, :, neurons].reshape((e - s) * steps, len(neurons)).T  # [neurons, time]
        ax.imshow(raster, aspect="auto", cmap="Greys", vmin=0, vmax=1, interpolation="nearest",
                  extent=(-0.5, e - s - 0.5, len(neurons) - 0.5, -0.5))
        if steps > 1:
            for x in range(e - s + 1):
                ax.axvline(x - 0.5, color="#c6dbef", lw=0.4, zorder=0)
        ax.set_xlim(-0.5, width - 0.5)
        ax.set_yticks(ticks)
        ax.set_yticklabels([str(neurons[i]) for i in ticks], fontsize=7)
        shown = "all" if len(neurons) == n else f"{len(neurons)} most active of"
        ax.set_ylabel(f"neuron\n({shown} {n})", fontsize=8)
        set_position_axis(ax, s, e)
        ax2 = fig.add_subplot(inner[1])
        ax2.bar(range(e - s), per_token[s:e], width=0.8, color="#e6550d")
        ax2.set_xlim(-0.5, width - 0.5)
        ax2.set_ylim(0, rate_max * 1.05)
        ax2.set_ylabel("rate", fontsize=8)
        ax2.tick_params(axis="y", labelsize=7)
        set_token_axis(ax2, labels, s, e)
    hist = fig.add_subplot(outer[-1].subgridspec(1, 2, width_ratios=[1, 1.2])[0])
    hist.hist(per_neuron, bins=min(40, max(5, n // 4)), range=(0, max(1e-3, float(per_neuron.max()))),
              color="#3182bd", log=True)
    hist.set_xlabel("firing rate of a neuron (spikes per step, over the probe)", fontsize=8)
    hist.set_ylabel("neurons (log scale)", fontsize=8)
    hist.tick_params(labelsize=7)
    silent = int((per_neuron == 0).sum())
    hist.set_title(f"{n} neurons: mean rate {per_neuron.mean():.3f}, {silent} silent", fontsize=9, loc="left")
    sub = f"{steps} spiking steps per token; black = spike" if steps > 1 else "black = spike"
    fig.suptitle(f"{title}{cycle_note(cycle, cycles)}   ({sub})", fontsize=12, x=0.02, ha="left")
    return save(fig, path)
