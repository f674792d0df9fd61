"""The classic HTM anomaly detector for time series, every series a stream of one batched SP + TM.

Encoders → spatial pooler → temporal memory → anomaly likelihood, with NuPIC's NAB detector
settings as defaults (:class:`DetectorConfig`; the settings and where they differ from NuPIC's are in
docs/design.md §5.2.5). All series run together, row t of every series one step of the batch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Callable, Sequence

import numpy as np
import torch

from cogsim.bounds import Annotated, Checked, Count, Positive, Range
from cogsim.htm.encoders import RDSE, DateEncoder
from cogsim.anomaly.likelihood import likelihood_series, log_likelihood

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class DetectorConfig(Checked):
    """Every knob of the pipeline; defaults are NuPIC's NAB detector (docs/design.md §5.2.5).

    Thresholds. NuPIC's 70.1 came from its *backtracking* TM;
    the plain (htm.core-semantics) TM here, fed the same kind of input, leaves 2-4x more columns
    unpredicted on real data (measured on the first ~400 rows of two NAB ad-exchange series against
    the raw scores NuPIC published for them). Lowering the activation threshold from 13 to 10 (and
    minThreshold from 10 to 8) brings the raw-anomaly level close to NuPIC's and makes the final
    scores track NuPIC's better (correlation 0.47-0.49 instead of −0.04-0.28 over the labelled window
    of one of them); on the synthetic corpus (:mod:`cogsim.anomaly.corpus`) the two settings
    score alike. ``activation_threshold=13, min_threshold=10`` restores NuPIC's numbers.

    Connected permanence: NuPIC's 70.1 run used its backtracking TM, which never set
    ``connectedPerm`` and so ran with its default 0.5; the 0.2 here is htm.core's detector choice
    (connected = the SP's synPermConnected), which makes a new synapse (initial 0.21) connected at
    once, i.e. one-shot sequence learning. ``connected_permanence=0.5`` reproduces NuPIC's slower
    learning (three reinforcements before a transition is predicted), but on the two NAB series above
    it left 3-7x more columns unpredicted than NuPIC did, so 0.2 stays. NuPIC's own settings for the
    plain TM (its 64.6 run) were activation 20, minThreshold 13, initial 0.24, 31 new synapses,
    128 synapses/segment, inc 0.04, dec 0.008, predictedSegmentDecrement 0.001, connected 0.5.
    """

    # Value encoder (RDSE); resolution = max(min_resolution, padded range / num_buckets).
    rdse_size: Count = 400
    rdse_active_bits: Count = 21
    num_buckets: Positive = 130.0
    min_resolution: Positive = 0.001
    range_padding: float = 0.2
    rdse_seed: int = 42
    # Date encoder: (active bits, radius) or None.
    time_of_day: tuple[int, float] | None = (21, 9.49)
    day_of_week: tuple[int, float] | None = None
    weekend: int | None = None
    # Spatial pooler.
    columns: Count = 2048
    active_columns: Count = 40
    potential_pct: float = 0.8
    syn_perm_connected: float = 0.2
    syn_perm_active_inc: float = 0.003
    syn_perm_inactive_dec: float = 0.0005
    boost_strength: float = 0.0
    sp_seed: int = 1956
    # Temporal memory.
    cells_per_column: Count = 32
    activation_threshold: int = 10
    min_threshold: int = 8
    initial_permanence: float = 0.21
    connected_permanence: float = 0.2
    max_new_synapse_count: int = 20
    permanence_increment: float = 0.1
    permanence_decrement: float = 0.1
    predicted_segment_decrement: float = 0.0
    max_segments_per_cell: Count = 128
    max_synapses_per_segment: Count = 32
    tm_seed: int = 1960
    # Scoring.
    probation_percent: Annotated[float, Range(gt=0, lt=1)] = 0.15
    max_probation_rows: int = 750
    use_likelihood: bool = True
    reestimation_period: Count = 100
    historic_window_size: Count = 8640
    symmetric_tail: bool = False  # later NuPIC: unusually low raw averages also count as unlikely
    spatial_anomaly: bool = True
    spatial_tolerance: float = 0.05
    # Rows encoded at once (memory vs. overhead).
    chunk_rows: Count = 512

    @classmethod
    def option_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


@dataclass
class Detection:
    """One series' output: the final anomaly score and the intermediate signals behind it."""

    score: np.ndarray
    raw: np.ndarray
    likelihood: np.ndarray
    spatial: np.ndarray
    resolution: float
    probation: int = 0
    extras: dict = field(default_factory=dict)


def probation_rows(n: int, config: DetectorConfig) -> int:
    """NAB's probationary period: min(floor(pct·n), pct·5000) rows."""
    return int(min(math.floor(config.probation_percent * n), config.max_probation_rows))


def rdse_resolution(values: np.ndarray, config: DetectorConfig) -> float:
    """NuPIC's rule: max(min_resolution, (max − min padded by 20% each side) / num_buckets)."""
    lo, hi = float(np.min(values)), float(np.max(values))
    pad = abs(hi - lo) * config.range_padding
    return max(config.min_resolution, ((hi + pad) - (lo - pad)) / config.num_buckets)


def spatial_anomaly(values: np.ndarray, tolerance: float = 0.05) -> np.ndarray:
    """True where a value leaves the range of all earlier values by more than ``tolerance`` of that
    range (never while the earlier values are all equal)."""
    v = np.asarray(values, dtype=np.float64)
    out = np.zeros(len(v), dtype=bool)
    if len(v) < 2:
        return out
    lo = np.minimum.accumulate(v)[:-1]
    hi = np.maximum.accumulate(v)[:-1]
    tol = (hi - lo) * tolerance
    out[1:] = (hi != lo) & ((v[1:] > hi + tol) | (v[1:] < lo - tol))
    return out


class _Encoder:
    """Timestamps and values of all streams → SP input SDRs, a chunk of rows at a time."""

    def __init__(self, resolutions: np.ndarray, config: DetectorConfig):
        self.rdse = RDSE(config.rdse_size, config.rdse_active_bits, resolutions, seed=config.rdse_seed)
        self.date = None
        if config.time_of_day or config.day_of_week or config.weekend:
            self.date = DateEncoder(config.time_of_day, config.day_of_week, config.weekend)
        self.size = self.rdse.size + (self.date.size if self.date else 0)

    def dense(self, times: np.ndarray, values: np.ndarray, active: np.ndarray, device) -> torch.Tensor:
        """Bool [streams, rows, size]; rows of inactive (finished) streams are all False."""
        idx = self.rdse.encode_indices(values, ordered=False)
        if self.date is not None:
            idx = np.concatenate([idx, self.date.encode_indices(times, ordered=False) + self.rdse.size], axis=-1)
        s, r, k = idx.shape
        out = torch.zeros(s * r, self.size, dtype=torch.bool)
        rows = np.flatnonzero(active)
        out[torch.from_numpy(rows)[:, None], torch.from_numpy(idx.reshape(s * r, k)[rows])] = True
        return out.view(s, r, self.size).to(device)


def _make_pooler(input_size: int, streams: int, config: DetectorConfig, device):
    from cogsim.htm.spatial_pooler import SpatialPooler

    return SpatialPooler(
        input_size, num_columns=config.columns, potential_radius=None, potential_pct=config.potential_pct,
        global_inhibition=True, num_active_columns=config.active_columns, stimulus_threshold=0,
        syn_perm_connected=config.syn_perm_connected, syn_perm_active_inc=config.syn_perm_active_inc,
        syn_perm_inactive_dec=config.syn_perm_inactive_dec, boost_strength=config.boost_strength,
        seed=config.sp_seed, streams=streams, device=device)


def _make_memory(streams: int, config: DetectorConfig, device):
    from cogsim.htm.temporal_memory import TemporalMemory

    return TemporalMemory(
        config.columns, cells_per_column=config.cells_per_column,
        activation_threshold=config.activation_threshold, initial_permanence=config.initial_permanence,
        connected_permanence=config.connected_permanence, min_threshold=config.min_threshold,
        max_new_synapse_count=config.max_new_synapse_count, permanence_increment=config.permanence_increment,
        permanence_decrement=config.permanence_decrement,
        predicted_segment_decrement=config.predicted_segment_decrement,
        max_segments_per_cell=config.max_segments_per_cell,
        max_synapses_per_segment=config.max_synapses_per_segment, seed=config.tm_seed, streams=streams,
        device=device)


def _pad(arrays: Sequence[np.ndarray], length: int, fill) -> np.ndarray:
    out = np.full((len(arrays), length), fill, dtype=np.asarray(arrays[0]).dtype)
    for i, a in enumerate(arrays):
        out[i, :len(a)] = a
    return out


def raw_anomaly_scores(series: Sequence[tuple[np.ndarray, np.ndarray]], config: DetectorConfig,
                       resolutions: np.ndarray, device=None, progress: ProgressFn | None = None) -> list[np.ndarray]:
    """Run all series through one batched encoder + SP + TM; the TM's raw anomaly per row."""
    device = torch.device(device or "cpu")
    lengths = np.array([len(v) for _, v in series])
    streams, steps, total = len(series), int(lengths.max()), int(lengths.sum())
    encoder = _Encoder(resolutions, config)
    sp = _make_pooler(encoder.size, streams, config, device)
    tm = _make_memory(streams, config, device)
    values = _pad([np.asarray(v, dtype=np.float64) for _, v in series], steps, 0.0)
    times = _pad([np.asarray(t).astype("datetime64[s]") for t, _ in series], steps, np.datetime64(0, "s"))
    raw = torch.zeros(streams, steps, device=device)
    done = 0
    with torch.no_grad():
        for start in range(0, steps, config.chunk_rows):
            stop = min(start + config.chunk_rows, steps)
            active = np.arange(start, stop)[None, :] < lengths[:, None]
            sdr = encoder.dense(times[:, start:stop], values[:, start:stop], active, device)
            ragged = not active.all()
            mask = torch.from_numpy(active).to(device)
            for j in range(stop - start):
                cols = sp.compute(sdr[:, j], learn=True)
                if ragged:
                    cols = cols & mask[:, j, None]
                raw[:, start + j] = tm.compute(cols, learn=True)
            done += int(active.sum())
            if progress is not None:
                progress(done, total)
    raw_np = raw.cpu().numpy().astype(np.float64)
    return [raw_np[i, :n] for i, n in enumerate(lengths)]


def score_series(values: np.ndarray, raw: np.ndarray, config: DetectorConfig, resolution: float) -> Detection:
    """Raw anomaly → likelihood → log-likelihood, with the spatial-anomaly override."""
    n = len(values)
    prob = probation_rows(n, config)
    learning = prob // 2
    if config.use_likelihood:
        lik = likelihood_series(raw, values, learning_period=learning, estimation_samples=prob - learning,
                                historic_window_size=config.historic_window_size,
                                reestimation_period=config.reestimation_period, symmetric=config.symmetric_tail)
        score = log_likelihood(lik)
    else:
        lik = np.full(n, np.nan)
        score = np.asarray(raw, dtype=np.float64).copy()
    spatial = spatial_anomaly(values, config.spatial_tolerance) if config.spatial_anomaly else np.zeros(n, bool)
    score = np.where(spatial, 1.0, score)
    return Detection(score=score, raw=np.asarray(raw), likelihood=lik, spatial=spatial, resolution=resolution,
                     probation=prob)


def _validate(series: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
    if not series:
        raise ValueError("series: need at least one (timestamps, values) series")
    for i, (t, v) in enumerate(series):
        t, v = np.asarray(t), np.asarray(v)
        if len(t) != len(v):
            raise ValueError(f"series: series {i} has {len(t)} timestamps but {len(v)} values")
        if len(v) == 0:
            raise ValueError(f"series: series {i} is empty")
        if not np.issubdtype(t.dtype, np.datetime64):
            raise ValueError(f"series: series {i} timestamps must be numpy datetime64, got {t.dtype}")
        if not np.all(np.isfinite(np.asarray(v, dtype=np.float64))):
            raise ValueError(f"series: series {i} has non-finite values")


def detect(series: Sequence[tuple[np.ndarray, np.ndarray]], config: DetectorConfig | None = None,
           device=None, progress: ProgressFn | None = None) -> list[Detection]:
    """Run the detector over every series (one batch, one stream each); full per-series details."""
    config = config or DetectorConfig()
    _validate(series)
    resolutions = np.array([rdse_resolution(np.asarray(v, dtype=np.float64), config) for _, v in series])
    raws = raw_anomaly_scores(series, config, resolutions, device=device, progress=progress)
    return [score_series(np.asarray(v, dtype=np.float64), raw, config, res)
            for (_, v), raw, res in zip(series, raws, resolutions)]


def detect_many(series: Sequence[tuple[np.ndarray, np.ndarray]], progress: ProgressFn | None = None,
                device=None, **options) -> list[np.ndarray]:
    """Anomaly scores in [0, 1] for each (timestamps datetime64, values) series; ``options`` are
    :class:`DetectorConfig` fields (e.g. ``spatial_anomaly=False``); ``progress(rows_done, rows_total)``
    is called as rows are processed."""
    unknown = sorted(set(options) - set(DetectorConfig.option_names()))
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown detector option (known: {', '.join(DetectorConfig.option_names())})")
    config = replace(DetectorConfig(), **options)
    return [d.score for d in detect(series, config, device=device, progress=progress)]
