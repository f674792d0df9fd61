"""Encoders: values → sparse distributed representations (SDRs), batched over streams.

Each encoder has a fixed ``size`` and number of ``active_bits``: ``encode_indices`` gives the active
bits ``[..., active_bits]``, ``encode`` a dense bool SDR; :class:`MultiEncoder` joins several.
They follow htm.core's encoders, except that the RDSE never loses a bit to a collision
(docs/design.md §5.2.1).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch


def _to_numpy(x) -> tuple[np.ndarray, torch.device | None]:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy(), x.device
    return np.asarray(x), None


def _dense(indices: np.ndarray, size: int, device: torch.device | None):
    """Active-bit indices ``[..., k]`` → bool SDR ``[..., size]`` (numpy, or torch on ``device``)."""
    lead = indices.shape[:-1]
    flat = indices.reshape(-1, indices.shape[-1])
    if device is not None:
        out = torch.zeros(flat.shape[0], size, dtype=torch.bool, device=device)
        idx = torch.as_tensor(flat, dtype=torch.long, device=device)
        out.scatter_(1, idx, True)
        return out.reshape(*lead, size)
    out = np.zeros((flat.shape[0], size), dtype=bool)
    np.put_along_axis(out, flat.astype(np.int64), True, axis=1)
    return out.reshape(*lead, size)


class Encoder:
    """Base: subclasses set ``size`` and ``active_bits`` and implement :meth:`encode_indices`."""

    size: int
    active_bits: int

    def encode_indices(self, values, ordered: bool = True) -> np.ndarray:
        """Active-bit indices, int64 ``[*values.shape, active_bits]``, each row distinct; sorted unless
        ``ordered=False`` (cheaper when only the set of bits matters)."""
        raise NotImplementedError

    def encode(self, values):
        """Dense bool SDR ``[*values.shape, size]`` (torch in → torch out on the same device)."""
        arr, device = _to_numpy(values)
        return _dense(self.encode_indices(arr), self.size, device)


class RDSE(Encoder):
    """Random distributed scalar encoder: value → bucket ``floor(value / resolution)``; bucket ``b``
    is represented by the bits of the consecutive keys ``b … b + active_bits − 1`` in a seeded random
    table, so neighbouring buckets share ``active_bits − d`` bits at distance ``d`` and far buckets
    overlap only by chance. ``resolution`` may be a scalar or one value per stream (broadcast against
    the leading axis of the values: shape ``[streams]`` with values ``[streams]`` or ``[streams, rows]``).

    The key table is periodic (``period`` keys, default 2**16), built so that any ``active_bits``
    cyclically consecutive keys map to distinct bits; values ``period`` buckets apart alias, which is
    hundreds of times the value range at the usual ~130 buckets per range.
    """

    def __init__(self, size: int = 400, active_bits: int = 21, resolution: float | Sequence[float] = 1.0,
                 seed: int = 42, period: int = 1 << 16):
        if size < 2 * active_bits:
            raise ValueError(f"size: must be at least 2*active_bits ({2 * active_bits}), got {size}")
        if active_bits < 1:
            raise ValueError(f"active_bits: must be ≥ 1, got {active_bits}")
        res = np.asarray(resolution, dtype=np.float64)
        if np.any(~np.isfinite(res)) or np.any(res <= 0):
            raise ValueError(f"resolution: must be finite and > 0, got {resolution}")
        if period < 2 * active_bits:
            raise ValueError(f"period: must be at least 2*active_bits, got {period}")
        self.size, self.active_bits, self.resolution, self.seed, self.period = size, active_bits, res, seed, period
        self._table = self._build_table(size, active_bits, seed, period)

    @staticmethod
    def _build_table(size: int, w: int, seed: int, period: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        draws = rng.integers(0, size, size=period).tolist()
        table = [0] * period
        last = [-size * period] * size  # key that last used each bit
        for j in range(period):
            b = draws[j]
            # Distinct from the previous w-1 keys, and (near the end) from the first keys it wraps onto.
            while last[b] > j - w or (j + w - 1 >= period and b in table[: j + w - period]):
                b = int(rng.integers(0, size))
            table[j] = b
            last[b] = j
        return np.asarray(table, dtype=np.int64)

    def buckets(self, values) -> np.ndarray:
        """Bucket index (int64) of each value: ``floor(value / resolution)``."""
        v, _ = _to_numpy(values)
        v = v.astype(np.float64)
        if not np.all(np.isfinite(v)):
            raise ValueError("RDSE: values must be finite (no NaN or inf)")
        res = self.resolution.reshape(self.resolution.shape + (1,) * (v.ndim - self.resolution.ndim))
        return np.floor(v / res).astype(np.int64)

    def encode_indices(self, values, ordered: bool = True) -> np.ndarray:
        b = self.buckets(values)
        keys = np.mod(b[..., None] + np.arange(self.active_bits), self.period)
        bits = self._table[keys]
        return np.sort(bits, axis=-1) if ordered else bits


class ScalarEncoder(Encoder):
    """Contiguous block of ``active_bits`` bits sliding over ``size`` bits as the value goes from
    ``minimum`` to ``maximum`` (htm.core's ScalarEncoder). Non-periodic inputs are clipped to the range;
    periodic ones (e.g. hour of day) wrap, the block wrapping around the end of the SDR.

    Give either ``size`` or ``radius`` (values ``radius`` apart share no bits) or ``resolution``
    (values ``resolution`` apart get different encodings).
    """

    def __init__(self, minimum: float, maximum: float, active_bits: int, size: int | None = None,
                 radius: float | None = None, resolution: float | None = None, periodic: bool = False):
        if not maximum > minimum:
            raise ValueError(f"maximum: must be greater than minimum ({minimum}), got {maximum}")
        if active_bits < 1:
            raise ValueError(f"active_bits: must be ≥ 1, got {active_bits}")
        if sum(x is not None for x in (size, radius, resolution)) != 1:
            raise ValueError("size: give exactly one of size, radius, resolution")
        span = maximum - minimum
        if radius is not None:
            resolution = radius / active_bits
        if resolution is not None:
            if resolution <= 0:
                raise ValueError(f"resolution: must be > 0, got {resolution}")
            n_buckets = span / resolution if periodic else span / resolution + 1
            size = int(math.ceil(n_buckets - 1e-9)) + (0 if periodic else active_bits - 1)
        assert size is not None
        if size < active_bits + (1 if periodic else 0):
            raise ValueError(f"size: must exceed active_bits ({active_bits}), got {size}")
        self.minimum, self.maximum, self.periodic = float(minimum), float(maximum), periodic
        self.size, self.active_bits = int(size), int(active_bits)
        self.n_buckets = self.size if periodic else self.size - self.active_bits + 1

    def encode_indices(self, values, ordered: bool = True) -> np.ndarray:
        v, _ = _to_numpy(values)
        v = v.astype(np.float64)
        if not np.all(np.isfinite(v)):
            raise ValueError("ScalarEncoder: values must be finite (no NaN or inf)")
        span = self.maximum - self.minimum
        if self.periodic:
            frac = np.mod(v - self.minimum, span) / span
            start = np.floor(frac * self.n_buckets).astype(np.int64) % self.n_buckets
            idx = np.mod(start[..., None] + np.arange(self.active_bits), self.size)
            return np.sort(idx, axis=-1) if ordered else idx
        frac = np.clip((v - self.minimum) / span, 0.0, 1.0)
        start = np.rint(frac * (self.n_buckets - 1)).astype(np.int64)
        return start[..., None] + np.arange(self.active_bits)


class CategoryEncoder(Encoder):
    """Each of ``num_categories`` integer categories gets its own block of ``active_bits`` bits (no
    overlap between categories). Category ids outside ``[0, num_categories)`` map to an extra
    "unknown" block at the end."""

    def __init__(self, num_categories: int, active_bits: int = 21):
        if num_categories < 1:
            raise ValueError(f"num_categories: must be ≥ 1, got {num_categories}")
        if active_bits < 1:
            raise ValueError(f"active_bits: must be ≥ 1, got {active_bits}")
        self.num_categories, self.active_bits = int(num_categories), int(active_bits)
        self.size = (self.num_categories + 1) * self.active_bits

    def encode_indices(self, values, ordered: bool = True) -> np.ndarray:
        v, _ = _to_numpy(values)
        cat = v.astype(np.int64)
        cat = np.where((cat >= 0) & (cat < self.num_categories), cat, self.num_categories)
        return cat[..., None] * self.active_bits + np.arange(self.active_bits)


def _as_datetime64(timestamps) -> np.ndarray:
    ts = np.asarray(timestamps)
    if not np.issubdtype(ts.dtype, np.datetime64):
        raise ValueError(f"DateEncoder: timestamps must be numpy datetime64, got dtype {ts.dtype}")
    return ts.astype("datetime64[s]")


class DateEncoder(Encoder):
    """Calendar features of numpy ``datetime64`` timestamps (htm.core's DateEncoder subset):
    ``time_of_day`` = (active bits, radius in hours), periodic over 24 h; ``day_of_week`` =
    (active bits, radius in days), periodic over the week, Monday = 0; ``weekend`` = active bits of a
    two-category weekend flag (Saturday/Sunday). Disabled parts are ``None``; the parts are concatenated
    in that order."""

    def __init__(self, time_of_day: tuple[int, float] | None = (21, 9.49),
                 day_of_week: tuple[int, float] | None = None, weekend: int | None = None):
        parts: list[tuple[str, Encoder]] = []
        if time_of_day is not None:
            w, r = time_of_day
            parts.append(("time_of_day", ScalarEncoder(0.0, 24.0, int(w), radius=float(r), periodic=True)))
        if day_of_week is not None:
            w, r = day_of_week
            parts.append(("day_of_week", ScalarEncoder(0.0, 7.0, int(w), radius=float(r), periodic=True)))
        if weekend is not None:
            parts.append(("weekend", CategoryEncoder(1, int(weekend))))
        if not parts:
            raise ValueError("time_of_day: enable at least one of time_of_day, day_of_week, weekend")
        self._parts = parts
        self._multi = MultiEncoder([e for _, e in parts])
        self.size, self.active_bits = self._multi.size, self._multi.active_bits

    def features(self, timestamps) -> list[np.ndarray]:
        """The per-part input values (hour of day as a float, weekday, weekend flag)."""
        ts = _as_datetime64(timestamps)
        days = ts.astype("datetime64[D]")
        hour = (ts - days).astype(np.int64) / 3600.0
        weekday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday (Monday = 0)
        out = []
        for name, _ in self._parts:
            if name == "time_of_day":
                out.append(hour)
            elif name == "day_of_week":
                out.append(weekday.astype(np.float64) + hour / 24.0)
            else:
                # CategoryEncoder(1): category 0 = weekday block, anything else = the "unknown" block.
                out.append(np.where(weekday >= 5, 1, 0))
        return out

    def encode_indices(self, timestamps, ordered: bool = True) -> np.ndarray:
        return self._multi.encode_indices_parts(self.features(timestamps), ordered)

    def encode(self, timestamps):
        return _dense(self.encode_indices(timestamps), self.size, None)


class MultiEncoder(Encoder):
    """Concatenation of encoders: part ``i``'s bits are offset by the sizes of the parts before it."""

    def __init__(self, encoders: Sequence[Encoder]):
        if not encoders:
            raise ValueError("encoders: need at least one encoder")
        self.encoders = list(encoders)
        self.offsets = np.cumsum([0] + [e.size for e in self.encoders[:-1]])
        self.size = int(sum(e.size for e in self.encoders))
        self.active_bits = int(sum(e.active_bits for e in self.encoders))

    def encode_indices_parts(self, inputs: Sequence, ordered: bool = True) -> np.ndarray:
        """Indices for one input per part (all of the same leading shape), concatenated."""
        if len(inputs) != len(self.encoders):
            raise ValueError(f"inputs: expected {len(self.encoders)} inputs, got {len(inputs)}")
        return np.concatenate([e.encode_indices(x, ordered) + off
                               for e, x, off in zip(self.encoders, inputs, self.offsets)], axis=-1)

    def encode_indices(self, values, ordered: bool = True) -> np.ndarray:
        return self.encode_indices_parts(values, ordered)

    def encode(self, values):
        devices = [v.device for v in values if isinstance(v, torch.Tensor)]
        return _dense(self.encode_indices(values), self.size, devices[0] if devices else None)
