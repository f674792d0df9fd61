"""Engram n-gram hashing, bit-exact with the reference demo (DESIGN §5.1) and vectorised in torch.

For each Engram layer L and n-gram order n = 2..N, the token k steps back (the compressed pad id
before the sequence start) is multiplied by an odd per-layer multiplier m_k in wrapping int64,
the products are XOR-ed over k < n, and each of the order's heads takes the result modulo its own
prime table size. ``hash`` returns {L: LongTensor [B, T, (N-1)·heads]}, orders then heads.

Speed: the floor modulo by per-head primes is the whole cost. Hardware 64-bit division is slow and
not vectorised, so for primes >= 2**14 the quotient is estimated in float64 (biased to be exact or
one too small), the remainder is formed in wrapping int64 and corrected with one conditional
subtraction; the module docstring of ``_floor_mod_by_primes`` gives the error bound. Smaller primes
use ``torch.remainder`` (exact, Python sign rules).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from cogsim.engram.primes import head_primes
from cogsim.errors import CogsimError

#: Seeds of consecutive layers are this far apart (the demo's PRIME_1).
LAYER_SEED_STRIDE = 10007
#: Smallest prime for which the float64 quotient estimate is provably within the correction range.
FAST_MOD_MIN_PRIME = 1 << 14
_BIAS = float(1 << 50)  # shifts quotients positive so float→int truncation is a floor


def layer_multipliers(seed: int, layer_id: int, max_ngram_size: int, compressed_vocab_size: int) -> np.ndarray:
    """The demo's odd multipliers for one layer: int64 [max_ngram_size]."""
    half_bound = max(1, (int(np.iinfo(np.int64).max) // compressed_vocab_size) // 2)
    rng = np.random.default_rng(seed + LAYER_SEED_STRIDE * layer_id)
    return rng.integers(0, half_bound, size=max_ngram_size, dtype=np.int64) * 2 + 1


def _floor_mod_by_primes(mix: torch.Tensor, primes: torch.Tensor, inv_primes: torch.Tensor,
                         biased_primes: torch.Tensor) -> torch.Tensor:
    """``mix[..., None] mod primes`` (floor modulo, result in [0, p)) for primes >= 2**14.

    With |mix| <= 2**63 and p >= 2**14 the quotient Q = mix/p has |Q| <= 2**49. Three roundings
    (mix→double, 1/p, the product) leave |y - Q| <= 3·2**-53·2**49 < 0.19; adding 2**50 - 0.5 rounds
    by at most 0.125 (ulp 0.25 below 2**51). So z = y + 2**50 - 0.5 lies within
    [Q + 2**50 - 0.82, Q + 2**50 - 0.18] and trunc(z) - 2**50 is floor(Q) or floor(Q) - 1: the
    remainder mix - q·p, exact in wrapping int64, lies in [0, 2p) and one conditional subtraction
    finishes. ``biased_primes`` is 2**50·p (wrapped), so r = mix + 2**50·p - trunc(z)·p.
    """
    z = torch.addcmul(torch.tensor(_BIAS - 0.5, dtype=torch.float64, device=mix.device),
                      mix.to(torch.float64).unsqueeze(-1), inv_primes)
    r = torch.addcmul(mix.unsqueeze(-1) + biased_primes, z.to(torch.int64), primes, value=-1)
    r -= primes
    r += torch.bitwise_and(r >> 63, primes)  # add p back where the subtraction went negative
    return r


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
        # float64 quotients need every prime >= 2**14 (see _floor_mod_by_primes); else torch.remainder
        self._fast_mod = min(p for layer in self.layer_ids for p in self.head_sizes(layer)) >= FAST_MOD_MIN_PRIME
        self._constants: dict[torch.device, dict[str, torch.Tensor]] = {}

    @classmethod
    def from_tokenizer(cls, compressed, *, pad_id: int, **kwargs) -> "NgramHashMapping":
        """Build from a :class:`~cogsim.engram.compression.CompressedTokenizer`, taking ``pad_id`` in
        the *original* vocabulary (as the demo does) and the compressed vocabulary size from it."""
        return cls(pad_id=int(compressed.lookup_table[pad_id]), compressed_vocab_size=len(compressed), **kwargs)

    def _validate(self) -> None:
        n = self.max_ngram_size
        if n < 2:
            raise CogsimError(f"max_ngram_size: must be >= 2, got {n}")
        if len(self.vocab_size_per_ngram) != n - 1:
            raise CogsimError(f"engram_vocab_size: needs one size per n-gram order 2..{n} "
                              f"({n - 1} values), got {len(self.vocab_size_per_ngram)}")
        if min(self.vocab_size_per_ngram) < 1:
            raise CogsimError(f"engram_vocab_size: sizes must be >= 1, got {self.vocab_size_per_ngram}")
        if max(self.vocab_size_per_ngram) >= 1 << 52:
            raise CogsimError(f"engram_vocab_size: sizes must be below 2**52, got {max(self.vocab_size_per_ngram)}")
        if self.n_head_per_ngram < 1:
            raise CogsimError(f"n_head_per_ngram: must be >= 1, got {self.n_head_per_ngram}")
        if self.n_embed_per_ngram < 1 or self.n_embed_per_ngram % self.n_head_per_ngram:
            raise CogsimError(f"n_embed_per_ngram: must be a positive multiple of n_head_per_ngram "
                              f"({self.n_head_per_ngram}), got {self.n_embed_per_ngram}")
        if not self.layer_ids or len(set(self.layer_ids)) != len(self.layer_ids):
            raise CogsimError(f"layer_ids: must be a non-empty list of distinct layer ids, got {self.layer_ids}")
        if self.compressed_vocab_size < 1:
            raise CogsimError(f"compressed_vocab_size: must be >= 1, got {self.compressed_vocab_size}")
        if not 0 <= self.pad_id < self.compressed_vocab_size:
            raise CogsimError(f"pad_id: must be a compressed id in [0, {self.compressed_vocab_size}), "
                              f"got {self.pad_id}")
        bad = [layer for layer in self.layer_ids if self.seed + LAYER_SEED_STRIDE * layer < 0]
        if bad:
            raise CogsimError(f"seed: seed + {LAYER_SEED_STRIDE}·layer_id must be >= 0 (numpy seeds), "
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
    def _device_constants(self, device: torch.device) -> dict[str, torch.Tensor]:
        consts = self._constants.get(device)
        if consts is None:
            n, heads, layers = self.max_ngram_size, self.n_head_per_ngram, len(self.layer_ids)
            mult = np.stack([self.layer_multipliers[layer] for layer in self.layer_ids])  # [L, N]
            primes = np.array([self.vocab_size_across_layers[layer] for layer in self.layer_ids],
                              dtype=np.int64)  # [L, N-1, H]
            shape = (layers, 1, 1, n - 1, heads)
            with np.errstate(over="ignore"):
                biased = primes * np.int64(1 << 50)  # wraps on purpose; see _floor_mod_by_primes
            consts = {
                # window column j holds the token N-1-j steps back, so it takes multiplier m[N-1-j]
                "mult": torch.from_numpy(mult[:, ::-1].copy()).view(layers, 1, 1, n).to(device),
                "primes": torch.from_numpy(primes).view(shape).to(device),
                "inv_primes": torch.from_numpy(1.0 / primes.astype(np.float64)).view(shape).to(device),
                "biased_primes": torch.from_numpy(biased).view(shape).to(device),
            }
            self._constants[device] = consts
        return consts

    def _as_ids(self, ids) -> torch.Tensor:
        if isinstance(ids, np.ndarray):
            ids = torch.from_numpy(ids)
        elif not isinstance(ids, torch.Tensor):
            ids = torch.as_tensor(np.asarray(ids))
        if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
            raise CogsimError(f"ids: expected integer token ids, got dtype {ids.dtype}")
        if ids.dim() != 2:
            raise CogsimError(f"ids: expected compressed ids of shape [B, T], got shape {tuple(ids.shape)}")
        return ids.to(torch.int64)

    def hash(self, ids) -> dict[int, torch.Tensor]:
        """Compressed ids [B, T] (numpy or torch, any integer dtype) → {layer_id: LongTensor
        [B, T, (N-1)·heads]} on the ids' device, bit-exact with the reference."""
        x = self._as_ids(ids)
        batch, length = x.shape
        n, layers = self.max_ngram_size, len(self.layer_ids)
        c = self._device_constants(x.device)
        padded = torch.nn.functional.pad(x, (n - 1, 0), value=self.pad_id)
        windows = padded.unfold(1, n, 1)  # [B, T, N]; column j = token N-1-j steps back
        prods = windows.unsqueeze(0) * c["mult"]  # [L, B, T, N], wrapping int64
        mix = torch.empty((layers, batch, length, n - 1), dtype=torch.int64, device=x.device)
        acc = prods[..., n - 1]
        for order in range(2, n + 1):  # at most N-1 iterations; everything else is vectorised
            acc = torch.bitwise_xor(acc, prods[..., n - order], out=mix[..., order - 2])
        if self._fast_mod:
            rows = _floor_mod_by_primes(mix, c["primes"], c["inv_primes"], c["biased_primes"])
        else:
            rows = torch.remainder(mix.unsqueeze(-1), c["primes"])
        rows = rows.view(layers, batch, length, self.n_heads_per_layer)
        return {layer: rows[i] for i, layer in enumerate(self.layer_ids)}
