"""The classic HTM anomaly detector for time series, every series its own stream of SP + TM.

Encoders → spatial pooler → temporal memory → anomaly likelihood, with NuPIC's NAB detector
settings as defaults (:class:`DetectorConfig`; the settings and where they differ from NuPIC's are in
docs/design.md §5.2.5). Series run in batches of similar length on worker threads (§5.2.5).
"""
from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from typing import Callable, Sequence

import numpy as np
import torch

from cogsim.bounds import Annotated, Checked, Count, FieldError, Positive, Range
from cogsim.htm.encoders import RDSE, DateEncoder
from cogsim.anomaly.likelihood import likelihood_series, log_likelihood

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class DetectorConfig(Checked):
    """Every knob of the pipeline; defaults are NuPIC's NAB detector (docs/design.md §5.2.5).

    Temporal memory: NuPIC's backtracking TM (:mod:`cogsim.htm.backtracking_tm`) with NuPIC's
    settings (activation 13, minThreshold 10, connected 0.5, initial 0.21, 20 new synapses, ±0.1,
    128 segments × 32 synapses, pamLength 3). On the whole NAB corpus it scores standard 71.05 (69.9
    on average over 8 seed draws) where the plain TM scores 60.7 (experiments/results/nab/README.md).
    ``temporal_memory="plain"`` runs
    htm.core's TM with the same fields; the plain TM did best on NAB's ad-exchange series with
    activation 10, minThreshold 8 and connected 0.2 (one-shot learning), and NuPIC's own plain-TM run
    (its 64.6) used activation 20, minThreshold 13, initial 0.24, 31 new synapses, 128
    synapses/segment, inc 0.04, dec 0.008, predictedSegmentDecrement 0.001, connected 0.5.
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
    # Temporal memory: "backtracking" (NuPIC's, :mod:`cogsim.htm.backtracking_tm`) or "plain"
    # (htm.core's, :mod:`cogsim.htm.temporal_memory`).
    temporal_memory: str = "backtracking"
    cells_per_column: Count = 32
    activation_threshold: int = 13
    min_threshold: int = 10
    initial_permanence: float = 0.21
    connected_permanence: float = 0.5
    max_new_synapse_count: int = 20
    permanence_increment: float = 0.1
    permanence_decrement: float = 0.1
    predicted_segment_decrement: float = 0.0
    max_segments_per_cell: Count = 128
    max_synapses_per_segment: Count = 32
    tm_seed: int = 1960
    # True: series i (input order) gets sp_seed + i and tm_seed + i (each series then runs alone through
    # the SP); False: every series the same seeds (NuPIC's way).
    series_seeds: bool = False
    # Backtracking TM only (NuPIC's names: pamLength, maxInfBacktrack, maxLrnBacktrack, maxSeqLength).
    pam_length: Count = 3
    max_inf_backtrack: Annotated[int, Range(ge=0)] = 10
    max_lrn_backtrack: Annotated[int, Range(ge=0)] = 5
    max_seq_length: Annotated[int, Range(ge=0, note="0: no limit")] = 32
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

    def check(self) -> None:
        if self.temporal_memory not in ("backtracking", "plain"):
            raise FieldError("temporal_memory", f"must be 'backtracking' or 'plain', got {self.temporal_memory!r}")

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


def _make_memory(streams: int, config: DetectorConfig, device, seeds=None, threads=None):
    if config.temporal_memory == "backtracking":
        from cogsim.htm.backtracking_tm import BacktrackingTM

        return BacktrackingTM(
            config.columns, cells_per_column=config.cells_per_column,
            activation_threshold=config.activation_threshold, min_threshold=config.min_threshold,
            initial_permanence=config.initial_permanence, connected_permanence=config.connected_permanence,
            permanence_increment=config.permanence_increment, permanence_decrement=config.permanence_decrement,
            new_synapse_count=config.max_new_synapse_count, max_segments_per_cell=config.max_segments_per_cell,
            max_synapses_per_segment=config.max_synapses_per_segment, pam_length=config.pam_length,
            max_inf_backtrack=config.max_inf_backtrack, max_lrn_backtrack=config.max_lrn_backtrack,
            max_seq_length=config.max_seq_length, seed=config.tm_seed, streams=streams, seeds=seeds, threads=threads)
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


#: series run through the spatial pooler in lockstep batches of this many (similar lengths)
GROUP = 8
#: rows each series advances per call of the backtracking TM (the progress granularity)
TM_ROUND = 1024


def _same_start(sp) -> None:
    """Every stream of the pooler starts from stream 0's initial state (as NuPIC gave every file the
    same seeded pooler), so a series' result does not depend on the batch or position it runs in."""
    state = sp.state_dict()
    for name, buf in state.items():
        if name != "iterations" and buf.dim() >= 1 and buf.shape[0] == sp.streams:
            buf.copy_(buf[:1].expand_as(buf))
    sp.load_state_dict(state)


class _Rows:
    """Active columns of every row of a series, flat: ids (int32) and per-row counts."""

    def __init__(self):
        self.ids: list[np.ndarray] = []
        self.counts: list[np.ndarray] = []


def _pool_group(series, config: DetectorConfig, resolutions: np.ndarray, device, tick) -> tuple[list, list]:
    """Encoder + SP over a group of series in lockstep (learning). With the plain TM the TM runs in
    the same loop and its raw anomalies come back; else each series' active columns (``_Rows``)."""
    S = len(series)
    lengths = np.array([len(v) for _, v in series])
    steps = int(lengths.max())
    encoder = _Encoder(resolutions, config)
    sp = _make_pooler(encoder.size, S, config, device)
    _same_start(sp)
    plain = config.temporal_memory == "plain"
    tm = _make_memory(S, config, device) if plain else None
    values = _pad([np.asarray(v, dtype=np.float64) for _, v in series], steps, 0.0)
    times = _pad([np.asarray(t).astype("datetime64[s]") for t, _ in series], steps, np.datetime64(0, "s"))
    raw = torch.zeros(S, steps, device=device) if plain else None
    rows = [_Rows() for _ in range(S)]
    with torch.no_grad():
        for start in range(0, steps, config.chunk_rows):
            stop = min(start + config.chunk_rows, steps)
            active = np.arange(start, stop)[None, :] < lengths[:, None]
            sdr = encoder.dense(times[:, start:stop], values[:, start:stop], active, device)
            ragged = not active.all()
            mask = torch.from_numpy(active).to(device)
            buf = None if plain else torch.empty(stop - start, S, config.columns, dtype=torch.bool)
            for j in range(stop - start):
                cols = sp.compute(sdr[:, j], learn=True)
                if ragged:
                    cols = cols & mask[:, j, None]
                if plain:
                    raw[:, start + j] = tm.compute(cols, learn=True)
                else:
                    buf[j] = cols
            if not plain:
                nz = buf.permute(1, 0, 2).nonzero().numpy()  # (stream, row, column), sorted
                bounds = np.searchsorted(nz[:, 0], np.arange(S + 1))
                for s in range(S):
                    n = max(0, min(stop, int(lengths[s])) - start)
                    part = nz[bounds[s]:bounds[s + 1]]
                    rows[s].ids.append(part[:, 2].astype(np.int32))
                    rows[s].counts.append(np.bincount(part[:, 1], minlength=stop - start)[:n])
            tick(int(active.sum()))
    if plain:
        raw_np = raw.cpu().numpy().astype(np.float64)
        return [raw_np[i, :n] for i, n in enumerate(lengths)], []
    return [], rows


def _run_backtracking(rows: list[_Rows], config: DetectorConfig, threads: int, tick) -> list[np.ndarray]:
    """The backtracking TM over every series (same seed for each), all rows in C, the streams spread
    over threads; ``TM_ROUND`` rows per series per call."""
    from cogsim.htm.backtracking_tm import BacktrackingTM

    seeds = [config.tm_seed + i if config.series_seeds else config.tm_seed for i in range(len(rows))]
    tm = _make_memory(len(rows), config, None, seeds=seeds, threads=threads)
    ids = np.ascontiguousarray(np.concatenate([i for r in rows for i in r.ids]), dtype=np.int32)
    counts = np.concatenate([c for r in rows for c in r.counts])
    row_ptr = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=row_ptr[1:])
    nrows = np.array([sum(len(c) for c in r.counts) for r in rows], dtype=np.int64)
    first = np.concatenate([[0], np.cumsum(nrows)[:-1]]).astype(np.int64)
    out = np.zeros(len(counts), dtype=np.float32)
    assert isinstance(tm, BacktrackingTM)
    for done in range(0, int(nrows.max(initial=0)), TM_ROUND):
        take = np.clip(nrows - done, 0, TM_ROUND)
        tm.run_rows(ids, row_ptr, first + np.minimum(done, nrows), take, out)
        tick(int(take.sum()))
    return [out[a:a + n].astype(np.float64) for a, n in zip(first.tolist(), nrows.tolist())]


def raw_anomaly_scores(series: Sequence[tuple[np.ndarray, np.ndarray]], config: DetectorConfig,
                       resolutions: np.ndarray, device=None, progress: ProgressFn | None = None,
                       threads: int | None = None) -> list[np.ndarray]:
    """Every series through encoder + SP + TM; the TM's raw anomaly per row. Series run in batches
    of ``GROUP`` of similar length (longest first) on ``threads`` workers (default: the kernels'
    thread limit), then the backtracking TM runs each series' rows in C over the same threads.
    With the backtracking TM every series starts from the same seeded state, so its result does not
    depend on the others (the plain TM seeds stream s of a batch with ``tm_seed + s``)."""
    from cogsim.htm.temporal_memory import intra_op_threads
    from cogsim.native import max_threads, thread_limit

    device = torch.device(device or "cpu")
    plain = config.temporal_memory == "plain"
    lengths = np.array([len(v) for _, v in series])
    order = np.argsort(-lengths, kind="stable")
    size = 1 if config.series_seeds else GROUP
    groups = [order[i:i + size] for i in range(0, len(order), size)]
    workers = max(1, min(threads or max_threads(), len(groups) if plain else len(series)))
    total = int(lengths.sum())
    done, lock = [0], threading.Lock()

    def tick(n: int) -> None:  # rows through a stage; with two stages (SP, then TM) a row counts half in each
        with lock:
            done[0] += n
            if progress is not None:
                progress(done[0] if plain else done[0] // 2, total)

    raws: list = [None] * len(series)
    rows: list = [None] * len(series)

    def pool(idx: np.ndarray) -> None:
        cfg = replace(config, sp_seed=config.sp_seed + int(idx[0]), tm_seed=config.tm_seed + int(idx[0])) \
            if config.series_seeds else config
        got_raw, got_rows = _pool_group([series[i] for i in idx], cfg, resolutions[idx], device, tick)
        for k, i in enumerate(idx):
            if plain:
                raws[i] = got_raw[k]
            else:
                rows[i] = got_rows[k]

    # the parallelism is across batches: every kernel call on one thread
    with thread_limit(1 if workers > 1 else None), intra_op_threads(1), \
            ThreadPoolExecutor(min(workers, len(groups))) as ex:
        list(ex.map(pool, groups))
    if not plain:
        raws = _run_backtracking(rows, config, workers, tick)
    return raws


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
    """Run the detector over every series (each its own stream); full per-series details."""
    config = config or DetectorConfig()
    _validate(series)
    resolutions = np.array([rdse_resolution(np.asarray(v, dtype=np.float64), config) for _, v in series])
    raws = raw_anomaly_scores(series, config, resolutions, device=device, progress=progress)
    from cogsim.native import max_threads

    def score(k: int) -> Detection:
        return score_series(np.asarray(series[k][1], dtype=np.float64), raws[k], config, resolutions[k])

    with ThreadPoolExecutor(max(1, min(max_threads(), len(series)))) as ex:
        return list(ex.map(score, range(len(series))))


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
