"""Engram n-gram hashing, bit-exact with the reference demo (docs/design.md §5.1), native on CPU, torch elsewhere.

``NgramHashMapping.hash`` returns {layer: LongTensor [B, T, (N-1)·heads]}, orders then heads. The
modulo by per-head primes is the cost; how the native kernel and the torch fast path compute it
exactly is in docs/design.md §5.1.1.
"""
from __future__ import annotations

import sys
import threading
from typing import Sequence

import numpy as np
import torch

from cogsim.engram import native_hash
from cogsim.engram.primes import head_primes
from cogsim.bounds import FieldError
from cogsim.errors import CogsimError

#: Seeds of consecutive layers are this far apart (the demo's PRIME_1).
LAYER_SEED_STRIDE = 10007
#: Primes the float64-quotient path handles exactly (see ``_floor_mod_fast``).
FAST_MOD_MIN_PRIME, FAST_MOD_MAX_PRIME = 1 << 14, 1 << 30
#: Adding 1.5·2**52 rounds a double of magnitude < 2**51 to an integer that sits in its low mantissa
#: bits; the constant's own low 32 bits are zero, so the low word of the sum is the integer mod 2**32.
_MAGIC = 1.5 * 2.0**52
#: What ``NgramHashMapping.hash(ids, backend=...)`` accepts.
HASH_BACKENDS = ("auto", "native", "torch")


class EngramConfigError(CogsimError, FieldError):
    """A bad Engram configuration, naming its field (``EngramConfigError(field, message)``). Also a
    :class:`~cogsim.bounds.FieldError`, so a model building its nodes reports it at that field's line."""


def layer_multipliers(seed: int, layer_id: int, max_ngram_size: int, compressed_vocab_size: int) -> np.ndarray:
    """The demo's odd multipliers for one layer: int64 [max_ngram_size]."""
    half_bound = max(1, (int(np.iinfo(np.int64).max) // compressed_vocab_size) // 2)
    rng = np.random.default_rng(seed + LAYER_SEED_STRIDE * layer_id)
    return rng.integers(0, half_bound, size=max_ngram_size, dtype=np.int64) * 2 + 1


class _FastConstants:
    """Per-device constants of the fast path, shaped [L, 1, N-1, heads(·2)] to broadcast over positions."""

    def __init__(self, primes: np.ndarray, device: torch.device):
        layers, orders, heads = primes.shape
        shape = (layers, 1, orders, heads)
        self.inv_primes = torch.from_numpy(1.0 / primes.astype(np.float64)).view(shape).to(device)
        self.magic = torch.full((1, 1, orders, heads), _MAGIC, dtype=torch.float64, device=device)
        # int32 lane pairs of one int64: (low word, high word) on little-endian machines
        pairs = np.stack([primes, np.ones_like(primes)], axis=-1).astype(np.int32)
        self.prime_pairs = torch.from_numpy(pairs).view(layers, 1, orders, 2 * heads).to(device)
        self.shift_pairs = torch.tensor([31, 0] * heads, dtype=torch.int32, device=device)


def _floor_mod_fast(mix: torch.Tensor, out: torch.Tensor, c: _FastConstants, work: torch.Tensor,
                    mask: torch.Tensor) -> None:
    """``out[l, t, o, h] = mix[l, t, o] mod p[l, o, h]`` (floor modulo) for primes in [2**14, 2**30].

    Quotient: with |mix| <= 2**63 and p >= 2**14, |mix/p| <= 2**49; three roundings (mix → double,
    1/p, the product) leave an error below 3·2**-53·2**49 < 0.19, so adding the magic constant rounds
    to q ∈ {floor(mix/p), floor(mix/p) + 1}, whose low 32 bits are the low word of the double.
    Remainder: r = mix - q·p lies in [-p, p) and fits int32 (p <= 2**30), so it is exact from the low
    words alone in wrapping int32: r = lo(mix) - lo(q)·p. Correction: the low lane adds p where r < 0
    (sign mask r >> 31); the high lane, shifted by 0 and multiplied by 1, cancels to zero, so each
    int64 of ``out`` ends up holding r zero-extended. ``work`` is float64 and ``mask`` int32 scratch.
    """
    layers, length, orders, heads = out.shape
    z = work[:, :length]
    z.copy_(mix.to(torch.float64).unsqueeze(-1).expand(layers, length, orders, heads))
    torch.addcmul(c.magic, z, c.inv_primes, out=z)
    out.copy_(mix.unsqueeze(-1).expand(layers, length, orders, heads))
    lanes = out.view(torch.int32)
    lanes.addcmul_(z.view(torch.int32), c.prime_pairs, value=-1)
    m = mask[:, :length]
    torch.bitwise_right_shift(lanes, c.shift_pairs, out=m)
    lanes.addcmul_(m, c.prime_pairs, value=-1)


class NgramHashMapping:
    """Hashes compressed token ids into per-head rows of the Engram tables (reference demo API).

    ``pad_id`` is an id of the *compressed* vocabulary: the demo maps the tokenizer's pad id through
    the lookup table before hashing, so pass ``int(compressed.lookup_table[pad])`` or build with
    :meth:`from_tokenizer`. ``vocab_size_across_layers[L][n-2][h]`` is the prime size of head h of
    order n in layer L; :meth:`offsets` and :meth:`table_rows` lay the heads of one layer out in a
    single table.
    """

    def __init__(self, engram_vocab_size: Sequence[int], max_ngram_size: int, n_embed_per_ngram: int,
                 n_head_per_ngram: int, layer_ids: Sequence[int], pad_id: int, seed: int,
                 compressed_vocab_size: int):
        self.vocab_size_per_ngram = [int(v) for v in engram_vocab_size]
        self.max_ngram_size = int(max_ngram_size)
        self.n_embed_per_ngram = int(n_embed_per_ngram)
        self.n_head_per_ngram = int(n_head_per_ngram)
        self.layer_ids = [int(layer) for layer in layer_ids]
        self.pad_id = int(pad_id)
        self.seed = int(seed)
        self.compressed_vocab_size = int(compressed_vocab_size)
        self._validate()
        self.layer_multipliers = {layer: layer_multipliers(self.seed, layer, self.max_ngram_size,
                                                           self.compressed_vocab_size)
                                  for layer in self.layer_ids}
        self.vocab_size_across_layers = head_primes(self.vocab_size_per_ngram, self.max_ngram_size,
                                                    self.n_head_per_ngram, self.layer_ids)
        all_primes = [p for layer in self.layer_ids for p in self.head_sizes(layer)]
        self._fast_mod = (FAST_MOD_MIN_PRIME <= min(all_primes) and max(all_primes) <= FAST_MOD_MAX_PRIME
                          and sys.byteorder == "little")  # the int32 lane pairs assume (low, high) order
        self._constants: dict[torch.device, dict[str, object]] = {}
        self._native: native_hash.HashConstants | None = None  # the C kernel's constants, built on first use
        self._scratch = threading.local()  # per-thread chunk buffers: a prefetch thread may hash too

    def __getstate__(self) -> dict:
        """Pickle/deepcopy without caches (per-device constants, per-thread scratch)."""
        state = dict(self.__dict__)
        state["_constants"], state["_scratch"], state["_native"] = {}, None, None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._scratch = threading.local()

    @classmethod
    def from_tokenizer(cls, compressed, *, pad_id: int, **kwargs) -> "NgramHashMapping":
        """Build from a :class:`~cogsim.engram.compression.CompressedTokenizer`, taking ``pad_id`` in
        the *original* vocabulary (as the demo does) and the compressed vocabulary size from it."""
        return cls(pad_id=int(compressed.lookup_table[pad_id]), compressed_vocab_size=len(compressed), **kwargs)

    def _validate(self) -> None:
        n = self.max_ngram_size
        if n < 2:
            raise EngramConfigError("max_ngram_size", f"must be >= 2, got {n}")
        if len(self.vocab_size_per_ngram) != n - 1:
            raise EngramConfigError("engram_vocab_size", f"needs one size per n-gram order 2..{n} "
                                    f"({n - 1} values), got {len(self.vocab_size_per_ngram)}")
        if min(self.vocab_size_per_ngram) < 1:
            raise EngramConfigError("engram_vocab_size", f"sizes must be >= 1, got {self.vocab_size_per_ngram}")
        if max(self.vocab_size_per_ngram) >= 1 << 62:
            raise EngramConfigError("engram_vocab_size",
                                    f"sizes must be below 2**62, got {max(self.vocab_size_per_ngram)}")
        if self.n_head_per_ngram < 1:
            raise EngramConfigError("n_head_per_ngram", f"must be >= 1, got {self.n_head_per_ngram}")
        if self.n_embed_per_ngram < 1 or self.n_embed_per_ngram % self.n_head_per_ngram:
            raise EngramConfigError("n_embed_per_ngram", f"must be a positive multiple of n_head_per_ngram "
                                    f"({self.n_head_per_ngram}), got {self.n_embed_per_ngram}")
        if not self.layer_ids or len(set(self.layer_ids)) != len(self.layer_ids):
            raise EngramConfigError("layer_ids",
                                    f"must be a non-empty list of distinct layer ids, got {self.layer_ids}")
        if self.compressed_vocab_size < 1:
            raise EngramConfigError("compressed_vocab_size", f"must be >= 1, got {self.compressed_vocab_size}")
        if not 0 <= self.pad_id < self.compressed_vocab_size:
            raise EngramConfigError("pad_id", f"must be a compressed id in [0, {self.compressed_vocab_size}), "
                                    f"got {self.pad_id}")
        bad = [layer for layer in self.layer_ids if self.seed + LAYER_SEED_STRIDE * layer < 0]
        if bad:
            raise EngramConfigError("seed", f"seed + {LAYER_SEED_STRIDE}·layer_id must be >= 0 (numpy seeds), "
                                    f"fails for layer ids {bad}")

    # ------------------------------------------------------------------ table layout
    @property
    def n_heads_per_layer(self) -> int:
        """Heads of one layer over all orders: (N-1)·n_head_per_ngram."""
        return (self.max_ngram_size - 1) * self.n_head_per_ngram

    @property
    def embed_dim_per_head(self) -> int:
        return self.n_embed_per_ngram // self.n_head_per_ngram

    def head_sizes(self, layer_id: int) -> list[int]:
        """Prime size of every head of a layer, orders then heads (the hash's last dimension)."""
        return [p for order in self.vocab_size_across_layers[layer_id] for p in order]

    def offsets(self, layer_id: int, device: torch.device | str | None = None) -> torch.Tensor:
        """LongTensor [(N-1)·heads]: first row of each head in the layer's single table, so the
        table row of hash h in head j is ``h + offsets[j]`` (exclusive cumulative sum of head sizes)."""
        sizes = torch.tensor([0] + self.head_sizes(layer_id)[:-1], dtype=torch.int64, device=device)
        return torch.cumsum(sizes, 0)

    def table_rows(self, layer_id: int) -> int:
        """Rows of the layer's table: the sum of its heads' prime sizes."""
        return sum(self.head_sizes(layer_id))

    # ------------------------------------------------------------------ hashing
    #: Head elements (layers x positions x heads) per chunk of the fast path: its scratch stays in cache.
    chunk_elements = 1 << 17

    def _device_constants(self, device: torch.device) -> dict[str, object]:
        consts = self._constants.get(device)
        if consts is None:
            layers, n = len(self.layer_ids), self.max_ngram_size
            mult = np.stack([self.layer_multipliers[layer] for layer in self.layer_ids])  # [L, N]
            primes = np.array([self.vocab_size_across_layers[layer] for layer in self.layer_ids],
                              dtype=np.int64)  # [L, N-1, H]
            consts = {
                # window column j holds the token N-1-j steps back, so it takes multiplier m[N-1-j]
                "mult": torch.from_numpy(mult[:, ::-1].copy()).view(layers, 1, 1, n).to(device),
                "primes": torch.from_numpy(primes).view(layers, 1, 1, n - 1, -1).to(device),
                "fast": _FastConstants(primes, device) if self._fast_mod and device.type == "cpu" else None,
            }
            self._constants[device] = consts
        return consts

    def _chunk_scratch(self, rows: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        layers, orders, heads = len(self.layer_ids), self.max_ngram_size - 1, self.n_head_per_ngram
        scratch = getattr(self._scratch, "buffers", None)
        if scratch is None or scratch[0].shape[1] < rows or scratch[0].device != device:
            scratch = (torch.empty((layers, rows, orders, heads), dtype=torch.float64, device=device),
                       torch.empty((layers, rows, orders, 2 * heads), dtype=torch.int32, device=device))
            self._scratch.buffers = scratch
        return scratch

    def _as_ids(self, ids) -> torch.Tensor:
        if isinstance(ids, torch.Tensor) and ids.dtype == torch.int64 and ids.dim() == 2:
            return ids
        if isinstance(ids, np.ndarray):
            ids = torch.from_numpy(ids)
        elif not isinstance(ids, torch.Tensor):
            ids = torch.as_tensor(np.asarray(ids))
        if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
            raise CogsimError(f"ids: expected integer token ids, got dtype {ids.dtype}")
        if ids.dim() != 2:
            raise CogsimError(f"ids: expected compressed ids of shape [B, T], got shape {tuple(ids.shape)}")
        return ids.to(torch.int64)

    def _mix(self, x: torch.Tensor, mult: torch.Tensor) -> torch.Tensor:
        """int64 [L, B·T, N-1]: per layer and order n, XOR over k < n of (token k back) · m_k."""
        n, layers = self.max_ngram_size, len(self.layer_ids)
        padded = torch.nn.functional.pad(x, (n - 1, 0), value=self.pad_id)
        prods = padded.unfold(1, n, 1).unsqueeze(0) * mult  # [L, B, T, N]; column j = token N-1-j back
        mix = torch.empty((layers, x.shape[0], x.shape[1], n - 1), dtype=torch.int64, device=x.device)
        acc = prods[..., n - 1]
        for order in range(2, n + 1):  # N-1 <= 3 iterations; everything else is vectorised
            acc = torch.bitwise_xor(acc, prods[..., n - order], out=mix[..., order - 2])
        return mix.view(layers, -1, n - 1)

    def _native_constants(self) -> native_hash.HashConstants:
        if self._native is None:
            mult = np.stack([self.layer_multipliers[layer] for layer in self.layer_ids])
            primes = np.array([self.vocab_size_across_layers[layer] for layer in self.layer_ids], dtype=np.int64)
            self._native = native_hash.HashConstants(mult, primes, self.pad_id)
        return self._native

    def hash(self, ids, backend: str = "auto") -> dict[int, torch.Tensor]:
        """Compressed ids [B, T] (numpy or torch, any integer dtype) → {layer_id: LongTensor
        [B, T, (N-1)·heads]} on the ids' device, bit-exact with the reference.

        ``backend``: ``"native"`` (the C kernel of :mod:`cogsim.engram.native_hash`, CPU only),
        ``"torch"`` (vectorised torch, any device) or ``"auto"`` (native for CPU ids when the kernel
        is available, else torch)."""
        if backend not in HASH_BACKENDS:
            raise CogsimError(f"backend: expected one of {', '.join(HASH_BACKENDS)}, got {backend!r}")
        x = self._as_ids(ids)
        batch, length = x.shape
        layers, orders, heads = len(self.layer_ids), self.max_ngram_size - 1, self.n_head_per_ngram
        if backend != "torch" and x.device.type == "cpu" and native_hash.library() is not None:
            return dict(zip(self.layer_ids, native_hash.hash_rows(x, self._native_constants()).unbind(0)))
        if backend == "native":
            reason = "ids are on " + str(x.device) if x.device.type != "cpu" else native_hash.status()
            raise CogsimError(f"backend: the native hash kernel cannot run ({reason})")
        c = self._device_constants(x.device)
        mix = self._mix(x, c["mult"])  # [L, B·T, N-1]
        fast: _FastConstants | None = c["fast"]
        if fast is None:
            rows = torch.remainder(mix.view(layers, batch, length, orders, 1), c["primes"])
        else:
            rows = torch.empty((layers, batch * length, orders, heads), dtype=torch.int64, device=x.device)
            chunk = max(1, self.chunk_elements // (layers * orders * heads))
            work, mask = self._chunk_scratch(min(chunk, batch * length), x.device)
            for start in range(0, batch * length, chunk):  # blocks of positions, to stay in cache
                stop = min(start + chunk, batch * length)
                _floor_mod_fast(mix[:, start:stop], rows[:, start:stop], fast, work, mask)
        rows = rows.view(layers, batch, length, orders * heads)
        return {layer: rows[i] for i, layer in enumerate(self.layer_ids)}
