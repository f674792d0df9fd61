"""A plain, loop-by-loop NumPy statement of the Engram reference algorithm (docs/design.md §5.1).

Written from the published rules of DeepSeek's ``engram_demo_v1.py`` so the fast code in
``compression.py`` and ``hashing.py`` can be checked bit for bit against it, and so the hashing
benchmark has its baseline. Nothing here is tuned: the normaliser is spelled out with ``unicodedata``
and ``re`` instead of ``tokenizers.normalizers``, primes come from ``sympy.isprime`` and the hash loops
over layers, orders and heads exactly as the demo does.
"""
from __future__ import annotations

import itertools
import re
import unicodedata

import numpy as np
from sympy import isprime

#: Characters Rust's ``char::is_whitespace`` (Unicode White_Space) strips; ``tokenizers``' Strip uses it.
#: Python's ``str.strip()`` would also strip U+001C..U+001F, which Rust keeps.
RUST_WHITESPACE = ("\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
                   "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
#: Private-use placeholder the demo uses to keep a lone space through Strip.
SENTINEL = "\ue000"
_SPACE_RUN = re.compile(r"[ \t\r\n]+")


def reference_normalize(text: str) -> str:
    """The demo's normaliser chain, step by step: NFKC, NFD, drop marks, lowercase, collapse
    ``[ \\t\\r\\n]+`` to one space, protect a lone space, strip, restore the protected space."""
    s = unicodedata.normalize("NFKC", text)
    s = unicodedata.normalize("NFD", s)
    s = "".join(c for c in s if unicodedata.category(c) not in ("Mn", "Mc", "Me"))  # StripAccents
    s = "".join(c.lower() for c in s)  # Lowercase works char by char (no final-sigma rule)
    s = _SPACE_RUN.sub(" ", s)
    if s == " ":  # Replace(Regex("^ $"), SENTINEL): no newline is left, so ^ and $ are the ends
        s = SENTINEL
    s = s.strip(RUST_WHITESPACE)
    return s.replace(SENTINEL, " ")


def reference_compression_key(tokenizer, token_id: int, clean_up: bool = False) -> str:
    """The string an id is grouped by: its raw token where decoding yields U+FFFD, else its
    normalised text, else (normalised text empty) the decoded text itself. ``clean_up`` mimics
    transformers' ``clean_up_tokenization_spaces`` (the demo decodes through transformers)."""
    text = tokenizer.decode([token_id], skip_special_tokens=False)
    if clean_up:
        for old, new in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                         (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
            text = text.replace(old, new)
    if "\ufffd" in text:
        return tokenizer.id_to_token(token_id)
    norm = reference_normalize(text)
    return norm if norm else text


def reference_lookup_table(tokenizer, clean_up: bool = False) -> np.ndarray:
    """old id → new id, new ids numbered in order of first appearance over ids 0..V-1."""
    vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
    new_id_of_key: dict[str, int] = {}
    table = np.empty(vocab_size, dtype=np.int64)
    for token_id in range(vocab_size):
        key = reference_compression_key(tokenizer, token_id, clean_up)
        if key not in new_id_of_key:
            new_id_of_key[key] = len(new_id_of_key)
        table[token_id] = new_id_of_key[key]
    return table


def reference_compress(table: np.ndarray, ids) -> np.ndarray:
    """Map ids through the table; negative ids (padding markers) pass through unchanged."""
    arr = np.asarray(ids, dtype=np.int64)
    out = arr.copy()
    keep = arr >= 0
    out[keep] = table[arr[keep]]
    return out


def reference_multipliers(seed: int, layer_id: int, max_ngram_size: int, compressed_vocab_size: int) -> np.ndarray:
    """Odd per-layer multipliers 2r+1 with r drawn below half of int64_max // vocab."""
    max_long = np.iinfo(np.int64).max
    half_bound = max(1, (max_long // compressed_vocab_size) // 2)
    rng = np.random.default_rng(seed + 10007 * layer_id)
    r = rng.integers(0, half_bound, size=max_ngram_size, dtype=np.int64)
    return r * 2 + 1


def reference_primes(engram_vocab_size: list[int], max_ngram_size: int, n_head_per_ngram: int,
                     layer_ids: list[int]) -> dict[int, list[list[int]]]:
    """Walk layers, then orders 2..N, then heads; each head takes the first prime above the search
    start that no earlier head took. The start is ``vocab - 1`` for each order, then the prime just found."""
    taken: set[int] = set()
    result: dict[int, list[list[int]]] = {layer_id: [[] for _ in range(2, max_ngram_size + 1)] for layer_id in layer_ids}
    for layer_id, n, head in itertools.product(layer_ids, range(2, max_ngram_size + 1), range(n_head_per_ngram)):
        heads = result[layer_id][n - 2]
        candidate = (heads[-1] if head else engram_vocab_size[n - 2] - 1) + 1
        while candidate in taken or not isprime(candidate):
            candidate += 1
        taken.add(candidate)
        heads.append(candidate)
    return result


class ReferenceHash:
    """The demo's hash, stated plainly: multipliers and primes fixed at construction, then per call a
    loop over layers, orders and heads. ``pad_id`` is already a compressed id (the demo compresses the
    tokenizer's pad id before hashing)."""

    def __init__(self, engram_vocab_size: list[int], max_ngram_size: int, n_head_per_ngram: int,
                 layer_ids: list[int], pad_id: int, seed: int, compressed_vocab_size: int):
        self.max_ngram_size = max_ngram_size
        self.layer_ids = list(layer_ids)
        self.pad_id = pad_id
        self.multipliers = {layer_id: reference_multipliers(seed, layer_id, max_ngram_size, compressed_vocab_size)
                            for layer_id in layer_ids}
        self.primes = reference_primes(engram_vocab_size, max_ngram_size, n_head_per_ngram, layer_ids)

    def hash(self, ids) -> dict[int, np.ndarray]:
        """Compressed ids [B, T] → {layer: int64 [B, T, (N-1)·heads]}, orders then heads."""
        x = np.asarray(ids, dtype=np.int64)
        length = x.shape[1]
        shifted = [x]  # shifted[k][:, t] is the token k steps back, the pad id before the start
        for k in range(1, self.max_ngram_size):
            padded = np.pad(x, ((0, 0), (k, 0)), mode="constant", constant_values=self.pad_id)
            shifted.append(padded[:, :length])
        out = {}
        for layer_id in self.layer_ids:
            mult = self.multipliers[layer_id]
            columns = []
            for n in range(2, self.max_ngram_size + 1):
                mix = shifted[0] * mult[0]  # int64 arrays wrap silently on overflow
                for k in range(1, n):
                    mix = np.bitwise_xor(mix, shifted[k] * mult[k])
                for p in self.primes[layer_id][n - 2]:
                    columns.append(mix % p)  # numpy % is a floor modulo: non-negative for p > 0
            out[layer_id] = np.stack(columns, axis=2)
        return out
