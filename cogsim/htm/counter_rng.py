"""Counter-based random numbers: a 32-bit hash of (seed, purpose, step, ...) instead of a stateful
generator, so that a random draw never depends on how many streams are batched together or on the
order in which a batch is processed. Works elementwise on int64 tensors (CPU and GPU) and on ints.
"""
from __future__ import annotations

import torch

MASK32 = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9

# Purposes of draws (distinct salts keep the streams of draws independent).
SALT_LEAST_USED = 0x1F3D5B79
SALT_GROW = 0x2C1B3C6D
SALT_TOKEN = 0x297A2D39
SALT_SP_INIT = 0x68E31DA4


def mix32(x):
    """A bijective 32-bit finaliser (lowbias32). ``x`` holds values in [0, 2**32)."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & MASK32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & MASK32
    return x ^ (x >> 16)


def hash_fold(h, part):
    """Fold one more integer (or int64 tensor) into a hash: ``hash32(*a, b) == hash_fold(hash32(*a), b)``."""
    if isinstance(part, torch.Tensor):
        part = part.long() & MASK32
    else:
        part = int(part) & MASK32
    return mix32(((h ^ part) + _GOLDEN) & MASK32)


def hash32(*parts):
    """Hash of a sequence of integers (ints or int64 tensors, broadcast) to [0, 2**32).

    Each part is folded in as ``h = mix32(((h ^ part) + golden) mod 2**32)``; tensors stay int64.
    Hash a shared prefix once and ``hash_fold`` the varying last part when that is cheaper.
    """
    h = 0
    for p in parts:
        h = hash_fold(h, p)
    return h
