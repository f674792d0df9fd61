"""Prime table sizes for the Engram hash heads: a deterministic Miller–Rabin test and the reference's
search order (layers, then n-gram orders, then heads; each prime used once across all of them)."""
from __future__ import annotations

#: Witnesses that make Miller–Rabin exact for every n < 3.3e24 (Sorenson & Webster 2015).
_WITNESSES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41)


def is_prime(n: int) -> bool:
    """Exact primality for any n below 3.3e24 (far above any table size)."""
    if n < 2:
        return False
    for p in _WITNESSES:
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for a in _WITNESSES:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def next_free_prime(after: int, taken: set[int]) -> int:
    """Smallest prime strictly greater than ``after`` that is not in ``taken``."""
    candidate = after + 1
    while not is_prime(candidate) or candidate in taken:
        candidate += 1
    return candidate


def head_primes(engram_vocab_size: list[int], max_ngram_size: int, n_head_per_ngram: int,
                layer_ids: list[int]) -> dict[int, list[list[int]]]:
    """{layer: [[prime per head] per order 2..N]}. For each (layer, order) the search starts above
    ``engram_vocab_size[n-2] - 1`` and each further head above the previous head's prime; a prime
    taken by any earlier (layer, order, head) is skipped, so all primes are distinct."""
    taken: set[int] = set()
    table: dict[int, list[list[int]]] = {}
    for layer_id in layer_ids:
        orders = []
        for n in range(2, max_ngram_size + 1):
            after = engram_vocab_size[n - 2] - 1
            heads = []
            for _ in range(n_head_per_ngram):
                after = next_free_prime(after, taken)
                taken.add(after)
                heads.append(after)
            orders.append(heads)
        table[layer_id] = orders
    return table
