"""HTM spatial pooler with htm.core's semantics, batched over independent streams, in plain torch.

Permanences are one [streams, columns, inputs] tensor with NaN outside the potential pool, so
learning needs no pool mask. With global inhibition on a CPU the step runs in the bit-exact C kernel
of :mod:`cogsim.htm.native_sp`, in place on the same buffers. Rules: docs/design.md §5.2.2.
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import nn

from cogsim.htm.native_tm import default_threads as _threads
from cogsim.htm.temporal_memory import intra_op_threads

EPSILON = 1e-6
UPDATE_PERIOD = 50
MAX_LOCAL_AREA_DENSITY = 0.5
BACKENDS = ("auto", "native", "torch")
_COUNT = {False: torch.tensor([1, 0]), True: torch.tensor([1, 1])}  # iteration increments (CPU, native path)


def _f32(x: float) -> float:
    return float(np.float32(x))


class SpatialPooler(nn.Module):
    """Batched spatial pooler: ``compute(input [streams, input_size] bool)`` → active columns
    [streams, num_columns] bool."""

    def __init__(self, input_size: int, num_columns: int = 2048, potential_radius: int | None = None,
                 potential_pct: float = 0.5, global_inhibition: bool = True,
                 num_active_columns: int | None = 40, local_area_density: float | None = None,
                 stimulus_threshold: int = 0, syn_perm_connected: float = 0.1, syn_perm_active_inc: float = 0.05,
                 syn_perm_inactive_dec: float = 0.008, boost_strength: float = 0.0, duty_cycle_period: int = 1000,
                 min_pct_overlap_duty_cycle: float = 0.001, seed: int = 1, streams: int = 1,
                 device: str | torch.device | None = None, wrap_around: bool = True, backend: str = "auto") -> None:
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if input_size < 1 or num_columns < 1 or streams < 1:
            raise ValueError("input_size, num_columns and streams must be ≥ 1")
        if not 0.0 < potential_pct <= 1.0:
            raise ValueError(f"potential_pct must be in (0, 1], got {potential_pct}")
        if local_area_density is not None:
            if not 0.0 < local_area_density <= 1.0:
                raise ValueError(f"local_area_density must be in (0, 1], got {local_area_density}")
            if int(local_area_density * num_columns) < 1:
                raise ValueError("local_area_density × num_columns must be ≥ 1")
            num_active_columns = None
        elif num_active_columns is None or not 0 < num_active_columns <= num_columns:
            raise ValueError(f"num_active_columns must be in [1, num_columns], got {num_active_columns}")
        if boost_strength < 0:
            raise ValueError(f"boost_strength must be ≥ 0, got {boost_strength}")
        if duty_cycle_period < 1:
            raise ValueError(f"duty_cycle_period must be ≥ 1, got {duty_cycle_period}")
        self.input_size = I = int(input_size)
        self.num_columns = C = int(num_columns)
        self.streams = S = int(streams)
        self.potential_radius = I if potential_radius is None else min(int(potential_radius), I)
        self.potential_pct = float(potential_pct)
        self.global_inhibition = bool(global_inhibition)
        self.num_active_columns = num_active_columns
        self.local_area_density = local_area_density
        self.stimulus_threshold = int(stimulus_threshold)
        self.syn_perm_connected = _f32(syn_perm_connected)
        self.syn_perm_active_inc = _f32(syn_perm_active_inc)
        self.syn_perm_inactive_dec = _f32(syn_perm_inactive_dec)
        self.syn_perm_below_stimulus_inc = float(np.float32(syn_perm_connected) / np.float32(10.0))
        self.boost_strength = _f32(boost_strength)
        self.duty_cycle_period = int(duty_cycle_period)
        self.min_pct_overlap_duty_cycle = _f32(min_pct_overlap_duty_cycle)
        self.seed = int(seed)
        self.wrap_around = bool(wrap_around)
        self._connected = float(np.float32(syn_perm_connected) - np.float32(EPSILON))
        dev = torch.device(device) if device is not None else torch.device("cpu")
        self.register_buffer("permanence", self._initial_pools(dev))
        self.register_buffer("overlap_duty", torch.zeros(S, C, device=dev))
        self.register_buffer("active_duty", torch.zeros(S, C, device=dev))
        self.register_buffer("min_overlap_duty", torch.zeros(S, C, device=dev))
        self.register_buffer("boost", torch.ones(S, C, device=dev))
        self.register_buffer("inhibition_radius", torch.zeros(S, dtype=torch.int64, device=dev))
        self.register_buffer("iterations", torch.zeros(2, dtype=torch.int64, device=dev))  # all, learning
        # derived from the permanences, built when a backend needs it: the torch path's input-major
        # connected mask (one row per (stream, input) plus an all-zero row at the end), and the native
        # kernel's per-column connected bitsets (CPU)
        self.register_buffer("connected_t", None, persistent=False)
        self._conn_fresh = False
        self._bits: torch.Tensor | None = None
        self._n_desired_key, self._n_desired_cache = None, None  # [S] winners, for an inhibition radius
        self.overlaps = torch.zeros(S, C, dtype=torch.int64, device=dev)
        for start in range(0, S * C, 4096):
            self._raise_to_threshold(torch.arange(start, min(S * C, start + 4096), device=dev))
        self._update_inhibition_radius()
        self.backend = backend
        self.bumped = torch.zeros(S, dtype=torch.int64, device=dev)  # weak columns bumped in the last step
        if backend == "native" and not self._native_possible():
            raise ValueError("backend 'native' needs global inhibition, a CPU device, a C compiler (gcc/cc) and "
                             "COGSIM_HTM_NATIVE / COGSIM_HTM_SP_NATIVE unset or 1")

    # ---- initialisation ------------------------------------------------------------------------
    def _initial_pools(self, dev: torch.device) -> torch.Tensor:
        S, C, I = self.streams, self.num_columns, self.input_size
        centre = torch.floor((torch.arange(C, dtype=torch.float32) + 0.5) * (I / C)).long()
        offset = torch.arange(I)[None, :] - centre[:, None]  # [C, I]
        if self.wrap_around:
            offset = torch.minimum(offset.abs(), I - offset.abs())
        hood = offset.abs() <= self.potential_radius
        n_pot = torch.round(hood.sum(1).double() * self.potential_pct).long()  # [C]
        perm = torch.empty(S, C, I, dtype=torch.float32)
        everywhere = bool(hood.all())
        conn = self.syn_perm_connected

        def pools(s: int) -> None:
            g = torch.Generator().manual_seed(self.seed + s)
            key = torch.rand(C, I, generator=g)
            # the n_pot smallest keys of each column's neighbourhood
            if everywhere:  # same pool size everywhere: drop the largest keys (cheaper than a sort)
                outside = (1, torch.topk(key, I - int(n_pot[0]), dim=1).indices)
            else:
                order = key.masked_fill_(~hood, 2.0).argsort(1)
                outside = (1, order, torch.arange(I) >= n_pot[:, None])
            coin = torch.rand(C, I, generator=g, dtype=torch.float64) <= 0.5
            hi = torch.rand(C, I, generator=g).mul_(1.0 - conn).add_(conn)  # conn + (1 - conn) · U
            lo = torch.rand(C, I, generator=g).mul_(conn)  # conn · U
            torch.where(coin, hi, lo, out=perm[s])
            if everywhere:
                perm[s].scatter_(*outside, math.nan)
            else:
                perm[s].masked_fill_(torch.zeros(C, I, dtype=torch.bool).scatter_(*outside), math.nan)

        # streams are independent (a generator each): a few at a time, one torch thread each
        with intra_op_threads(1), ThreadPoolExecutor(max(1, min(S, _threads()))) as pool:
            list(pool.map(pools, range(S)))
        return perm.to(dev)

    @property
    def potential(self) -> torch.Tensor:
        """Potential pools [streams, columns, inputs] (bool)."""
        return ~torch.isnan(self.permanence)

    # ---- public ----------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.permanence.device

    def _density(self) -> torch.Tensor:
        """Target density per stream [S] (htm.core inhibitColumns_)."""
        if self.local_area_density is not None:
            return torch.full((self.streams,), self.local_area_density, device=self.device)
        area = torch.clamp(2 * self.inhibition_radius + 1, max=self.num_columns).float()
        return torch.clamp(self.num_active_columns / area, max=MAX_LOCAL_AREA_DENSITY)

    def _uses_global(self) -> bool:
        return self.global_inhibition or bool((self.inhibition_radius > self.num_columns).all())

    @torch.no_grad()
    def compute(self, input_sdr: torch.Tensor, learn: bool = True) -> torch.Tensor:
        """Active columns [streams, num_columns] (bool) for the input [streams, input_size]."""
        S, I = self.streams, self.input_size
        if tuple(input_sdr.shape) != (S, I):
            raise ValueError(f"input_sdr must have shape [{S}, {I}], got {list(input_sdr.shape)}")
        x = input_sdr.to(device=self.device, dtype=torch.bool)
        if self._native:
            return self._native_compute(x.contiguous(), learn)
        self.iterations[0] += 1
        if learn:
            self.iterations[1] += 1
        if not self._conn_fresh:
            self._refresh_connected()
        if learn:
            self._bits = None  # the native kernel's bitsets go stale
        overlaps = self._overlaps(x)
        self.overlaps = overlaps
        boosted = overlaps.float() * self.boost if self.boost_strength >= EPSILON else overlaps
        active = self._inhibit(boosted)
        if learn:
            self._adapt(x, active)
            self._update_duty_cycles(overlaps, active)
            self._bump_weak_columns()
            self._update_boost()
            if int(self.iterations[0]) % UPDATE_PERIOD == 0:
                self._update_inhibition_radius()
                self._update_min_duty_cycles()
        return active

    # ---- native backend ------------------------------------------------------------------------
    def _native_possible(self) -> bool:
        from cogsim.htm import native_sp

        return (self.device.type == "cpu" and self.global_inhibition and os.environ.get("COGSIM_HTM_NATIVE") != "0"
                and native_sp.library() is not None)

    @property
    def backend(self) -> str:
        return self._backend

    @backend.setter
    def backend(self, value: str) -> None:
        """Switch backends at any time (the state is shared): "torch", "native" or "auto"."""
        if value not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {value!r}")
        self._backend = value
        self._native = value != "torch" and self._native_possible()

    @property
    def uses_native(self) -> bool:
        """Whether the C kernel runs the steps (else the torch path)."""
        return self._native

    def _native_compute(self, x: torch.Tensor, learn: bool) -> torch.Tensor:
        """The step in the C kernel, then the torch path's boost and inhibition-radius updates (the
        kernel also refreshes the minimum duty cycles when they are due)."""
        from cogsim.htm import native_sp

        buffers = self._buffers
        for name in ("permanence", "overlap_duty", "active_duty", "min_overlap_duty"):  # written in place
            if not buffers[name].is_contiguous():
                buffers[name] = buffers[name].contiguous()
        if self._bits is None:
            self._bits = native_sp.connected_bits(self)
        count = buffers["iterations"].add_(_COUNT[bool(learn)]).tolist()[0]  # (all, learning) += (1, learn)
        due = learn and count % UPDATE_PERIOD == 0
        radius = buffers["inhibition_radius"]
        key = (id(radius), radius._version)
        if self._n_desired_key != key:  # changes only with the inhibition radius
            self._n_desired_cache, self._n_desired_key = self._n_desired(), key
        decay, inc = self._duty_rates(count)
        boosting = self.boost_strength >= EPSILON
        self.overlaps, active, bumped = native_sp.step(self, self._bits, x, learn, self._n_desired_cache, decay, inc,
                                                       boosting, due)
        if learn:
            self.bumped = bumped
            self._conn_fresh = False  # the torch path's mask goes stale
            self._update_boost()
            if due:
                self._update_inhibition_radius()
        return active

    def _overlaps(self, x: torch.Tensor) -> torch.Tensor:
        """Connected synapses onto active inputs [S, C] (int64): the active inputs' rows of the
        input-major mask, padded per stream with the all-zero row, summed."""
        S, I = self.streams, self.input_size
        count = x.sum(1)
        k = int(count.max())
        if k == 0:
            return torch.zeros(S, self.num_columns, dtype=torch.int64, device=self.device)
        idx = torch.topk(x.to(torch.int8), k, dim=1, sorted=False).indices  # the active inputs first
        hit = x.gather(1, idx)
        rows = torch.where(hit, idx + (torch.arange(S, device=self.device) * I)[:, None], S * I)
        acc = torch.int16 if k < 2 ** 15 else torch.int32  # a narrow accumulator sums uint8 rows fastest
        return self.connected_t.index_select(0, rows.view(-1)).view(S, k, -1).sum(1, dtype=acc).long()

    # ---- inhibition ------------------------------------------------------------------------------
    def _inhibit(self, overlaps: torch.Tensor) -> torch.Tensor:
        S, C = self.streams, self.num_columns
        density = self._density()
        if self._uses_global():
            n_desired = self._n_desired(density)
            k = int(n_desired.max())
            cols = torch.arange(C, device=self.device)
            if overlaps.dtype == torch.int64:  # exact integer keys: (overlap, index) in one number
                win = torch.topk(overlaps * C + cols, k, dim=1).indices
            else:
                order = torch.sort(overlaps.flip(1), dim=1, descending=True, stable=True).indices
                win = C - 1 - order[:, :k]
            keep = torch.arange(k, device=self.device)[None, :] < n_desired.to(self.device)[:, None]
            keep &= overlaps.gather(1, win) >= self.stimulus_threshold
            return torch.zeros(S, C, dtype=torch.bool, device=self.device).scatter_(1, win, keep)
        return self._inhibit_local(overlaps, density)

    def _n_desired(self, density: torch.Tensor | None = None) -> torch.Tensor:
        """Winners per stream under global inhibition [S] (int64, CPU). htm.core: numDesired =
        UInt(density · numColumns); ties → higher index."""
        density = self._density() if density is None else density
        return torch.from_numpy((density.cpu().numpy().astype(np.float32) * np.float32(self.num_columns))
                                .astype(np.int64))

    def _neighbours(self, radius: int):
        """Offsets d (excluding 0) of a 1-D neighbourhood of the given radius."""
        C = self.num_columns
        r = min(radius, (C - 1) // 2) if self.wrap_around else min(radius, C - 1)
        d = torch.arange(-r, r + 1, device=self.device)
        return d[d != 0]

    def _neighbour_index(self, d: torch.Tensor):
        """[C, D] neighbour column ids and validity for offsets d."""
        C = self.num_columns
        idx = torch.arange(C, device=self.device)[:, None] + d[None, :]
        if self.wrap_around:
            return idx % C, torch.ones_like(idx, dtype=torch.bool)
        valid = (idx >= 0) & (idx < C)
        return idx.clamp(0, C - 1), valid

    def _inhibit_local(self, overlaps: torch.Tensor, density: torch.Tensor) -> torch.Tensor:
        S, C = self.streams, self.num_columns
        radius = self.inhibition_radius
        d = self._neighbours(int(radius.max()))
        nb, valid = self._neighbour_index(d)
        within = valid[None] & (d.abs()[None, None, :] <= radius[:, None, None])  # [S, C, D]
        n_nb = within.sum(2)
        n_desired = (0.5 + density[:, None] * (n_nb + 1).float()).long()
        cols = torch.arange(C, device=self.device)
        bigger = torch.zeros(S, C, dtype=torch.long, device=self.device)
        chunk = max(1, (1 << 22) // max(1, S * d.numel()))
        for c0 in range(0, C, chunk):
            sl = slice(c0, min(C, c0 + chunk))
            own = overlaps[:, sl, None]
            other = overlaps[:, nb[sl]]  # [S, c, D]
            beats = (other > own) | ((other == own) & (nb[sl] < cols[sl, None])[None])
            bigger[:, sl] = (beats & within[:, sl]).sum(2)
        return (overlaps >= self.stimulus_threshold) & (bigger < n_desired)

    # ---- learning --------------------------------------------------------------------------------
    def _adapt(self, x: torch.Tensor, active: torch.Tensor) -> None:
        s_idx, c_idx = active.nonzero(as_tuple=True)
        if s_idx.numel() == 0:
            return
        rows = s_idx * self.num_columns + c_idx
        flat = self.permanence.view(-1, self.input_size)
        perm = flat.index_select(0, rows)  # [A, I]
        delta = torch.where(x, self.syn_perm_active_inc, -self.syn_perm_inactive_dec).index_select(0, s_idx)
        new = (perm + delta).clamp_(0.0, 1.0)  # NaN (outside the pool) stays NaN
        flat.index_copy_(0, rows, new)
        if self._raise_to_threshold(rows):
            new = None  # changed again: re-read
        self._refresh_connected(rows, before=perm, after=new)

    def _raise_to_threshold(self, rows: torch.Tensor) -> bool:
        """htm.core raisePermanencesToThreshold(stimulus_threshold) on the given columns (flat
        stream·columns + column ids); whether anything changed."""
        th = self.stimulus_threshold
        if th <= 0:
            return False
        flat = self.permanence.view(-1, self.input_size)
        perm = flat.index_select(0, rows)
        pot = ~torch.isnan(perm)
        n_conn = (perm >= self._connected).sum(-1)
        k = torch.clamp(pot.sum(-1), max=th)
        need = (n_conn < th) & (k > 0)
        if not bool(need.any()):
            return False
        ranked = torch.sort(perm.nan_to_num(-1.0), dim=-1, descending=True).values
        kth = ranked.gather(-1, (k - 1).clamp(min=0)[..., None])[..., 0]
        inc = torch.where(need, self._connected - kth, torch.zeros((), device=perm.device)).clamp(min=0.0)
        flat.index_copy_(0, rows, (perm + inc[..., None]).clamp(0.0, 1.0))
        return True

    def _refresh_connected(self, rows=None, before=None, after=None) -> None:
        """Bring the input-major connected mask up to date: all of it, or the given columns (flat
        ids); with ``before`` (their previous permanences) only the synapses that crossed; ``after``
        saves re-reading their current permanences."""
        thr = self._connected
        C, I = self.num_columns, self.input_size
        if rows is None:
            S, dev = self.streams, self.device
            if self.connected_t is None or self.connected_t.device != dev:
                self.connected_t = torch.zeros(S * I + 1, C, dtype=torch.uint8, device=dev)
            conn = self.permanence >= thr
            self.connected_t[:-1] = conn.transpose(1, 2).reshape(-1, C).to(torch.uint8)
            self._conn_fresh = True
            return
        now = (self.permanence.view(-1, I).index_select(0, rows) if after is None else after) >= thr
        if before is not None:
            r, i = (now != (before >= thr)).nonzero(as_tuple=True)
        else:
            r, i = torch.ones_like(now).nonzero(as_tuple=True)
        if r.numel():
            row = rows[r]
            flat = ((row // C) * I + i) * C + row % C
            self.connected_t.view(-1)[flat] = now[r, i].to(torch.uint8)

    def _duty_rates(self, count: int | None = None) -> tuple[float, float]:
        """Duty-cycle decay and increment of this step (float32 values); ``count``: steps so far."""
        period = float(min(self.duty_cycle_period, int(self.iterations[0]) if count is None else count))
        return _f32((period - 1) / period), _f32(1.0 / period)

    def _update_duty_cycles(self, overlaps: torch.Tensor, active: torch.Tensor) -> None:
        decay, inc = self._duty_rates()
        self.overlap_duty.mul_(decay).add_((overlaps != 0).float() * inc)
        self.active_duty.mul_(decay).add_(active.float() * inc)

    def _bump_weak_columns(self) -> None:
        weak = (self.overlap_duty < self.min_overlap_duty).view(-1)
        self.bumped = weak.view(self.streams, -1).sum(1)
        if not bool(weak.any()):
            return
        rows = weak.nonzero().squeeze(1)
        flat = self.permanence.view(-1, self.input_size)
        perm = flat.index_select(0, rows)
        new = (perm + self.syn_perm_below_stimulus_inc).clamp(0.0, 1.0)
        flat.index_copy_(0, rows, new)
        self._refresh_connected(rows, before=perm, after=new)

    def _neighbourhood_reduce(self, values: torch.Tensor, op: str) -> torch.Tensor:
        """max or mean of ``values`` [S, C] over each column's neighbourhood, centre included."""
        radius = self.inhibition_radius
        d = self._neighbours(int(radius.max()))
        nb, valid = self._neighbour_index(d)
        within = valid[None] & (d.abs()[None, None, :] <= radius[:, None, None])
        other = values[:, nb]  # [S, C, D]
        if op == "max":
            return torch.maximum(values, other.masked_fill(~within, -math.inf).amax(2)) if d.numel() else values
        total = values + (other * within).sum(2)
        return total / (within.sum(2) + 1).float()

    def _update_boost(self) -> None:
        if self.boost_strength < EPSILON:
            return
        if self.global_inhibition:
            if self.num_active_columns is not None:
                area = torch.clamp(2 * self.inhibition_radius + 1, max=self.num_columns).float()
                target = torch.clamp(self.num_active_columns / area, max=MAX_LOCAL_AREA_DENSITY)[:, None]
            else:
                target = torch.full((self.streams, 1), self.local_area_density, device=self.device)
        else:
            target = self._neighbourhood_reduce(self.active_duty, "mean")
        self.boost = torch.exp((target - self.active_duty) * self.boost_strength)

    def _update_inhibition_radius(self) -> None:
        S, C, I = self.streams, self.num_columns, self.input_size
        if self.global_inhibition:
            self.inhibition_radius.fill_(C)
            return
        conn = self.permanence >= self.syn_perm_connected + EPSILON  # htm.core's span test
        idx = torch.arange(I, device=self.device)
        any_conn = conn.any(2)
        hi = torch.where(conn, idx, -1).amax(2)
        lo = torch.where(conn, idx, I).amin(2)
        span = torch.where(any_conn, hi - lo + 1, 0).float().mean(1)  # [S]
        diameter = span * (C / I)
        radius = torch.clamp((diameter - 1) / 2, min=1.0)
        self.inhibition_radius = torch.round(radius).long()

    def _update_min_duty_cycles(self) -> None:
        if self._uses_global() or bool((self.inhibition_radius >= self.num_columns).all()):
            top = self.overlap_duty.amax(1, keepdim=True)
            self.min_overlap_duty = (self.min_pct_overlap_duty_cycle * top).expand_as(self.overlap_duty).clone()
        else:
            self.min_overlap_duty = self.min_pct_overlap_duty_cycle * self._neighbourhood_reduce(
                self.overlap_duty, "max")

    def _apply(self, fn, recurse=True):
        # follow device moves only: permanences keep float32 under .half() etc.
        dev = fn(torch.zeros((), device=self.device)).device
        for name, buf in self._buffers.items():
            if buf is not None and buf.device != dev:
                self._buffers[name] = buf.to(dev)
        self.overlaps = self.overlaps.to(dev)
        self.bumped = self.bumped.to(dev)
        if dev.type != "cpu":
            self._bits = None
        self._n_desired_key = None
        self.backend = self.backend  # the native kernel runs on CPU only
        return self

    def __setstate__(self, state):
        super().__setstate__(state)
        self.backend = self.backend  # re-check where the pickle is loaded

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._conn_fresh, self._bits = False, None  # rebuilt by the next step
        self._n_desired_key = None
