"""Native hash kernel: its floor modulo against Python/NumPy ``%`` over the whole int64 range, and the
whole hash native == torch == NumPy reference on edge cases (wrapping products, primes near 2**13,
2**31 and above 2**32, T=1, B=1, strided ids, several threads), plus the backend switch."""
import numpy as np
import pytest
import torch

from cogsim.engram import NgramHashMapping, native_hash
from cogsim.engram.native_hash import F64_MAX_PRIME, F64_MIN_PRIME, reciprocal
from cogsim.engram.reference import ReferenceHash
from cogsim.errors import CogsimError

pytestmark = pytest.mark.skipif(native_hash.library() is None, reason="native hash kernel unavailable")

I64 = np.iinfo(np.int64)
#: Divisors of every kind the kernel meets or might: tiny, powers of two (l exact), the bounds of the
#: float64 path, around 2**31 and 2**32, far above (tables larger than any RAM) and the API's top.
DIVISORS = [2, 3, 5, 7, 8, 11, 4096, 8191, 8192, 8209, 646_403, 1 << 30, (1 << 31) - 1, 1 << 31,
            (1 << 31) + 11, (1 << 32) - 5, 1 << 32, (1 << 32) + 15, 1_099_511_627_791, (1 << 61) - 1,
            (1 << 62) - 57, 1 << 62, (1 << 63) - 25]


def int64_edges(p: int) -> np.ndarray:
    """Random full-range int64 plus the values where a remainder turns over: 0, ±1, the int64 ends,
    and multiples of p (and of p near the ends) with their neighbours."""
    rng = np.random.default_rng(p % 1000)
    xs = [int(v) for v in rng.integers(I64.min, I64.max, size=20_000, endpoint=True)]
    top = I64.max // p * p
    for base in [0, p, -p, 2 * p, -2 * p, top, -top, 12345 * p, -12345 * p]:
        xs += [base + d for d in (-1, 0, 1)]
    xs += [I64.min, I64.min + 1, I64.max, I64.max - 1, p - 1, 1 - p, I64.min + p - 1]
    return np.array([x for x in xs if I64.min <= x <= I64.max], dtype=np.int64)


@pytest.mark.parametrize("p", DIVISORS)
def test_reciprocal_meets_the_granlund_montgomery_bound(p):
    """The premise of the proof in native_hash: M = 2**64 + m satisfies 2**(64+l) < M·p <= 2**(64+l) + 2**l."""
    m, _, c, s = reciprocal(p)
    ell = s + 1
    assert (1 << (ell - 1)) < p <= (1 << ell) and 0 < m < 1 << 64 and c == (1 << 64) % p
    assert (1 << (64 + ell)) < ((1 << 64) + m) * p <= (1 << (64 + ell)) + (1 << ell)


@pytest.mark.parametrize("p", DIVISORS)
def test_floor_mod_equals_python_modulo_on_the_whole_int64_range(p):
    x = int64_edges(p)
    expected = x % np.int64(p)  # numpy's int64 % is Python's floor modulo
    assert [int(v) % p for v in x[-40:]] == expected[-40:].tolist()
    np.testing.assert_array_equal(native_hash.floor_mod(x, p), expected)
    if F64_MIN_PRIME <= p <= F64_MAX_PRIME:
        np.testing.assert_array_equal(native_hash.floor_mod(x, p, f64=True), expected)
    else:
        with pytest.raises(ValueError, match="float64"):
            native_hash.floor_mod(x, p, f64=True)


def test_reciprocal_refuses_divisors_out_of_range():
    for p in [0, 1, 1 << 63]:
        with pytest.raises(ValueError, match="divisor"):
            reciprocal(p)


def check(ev, n, heads, layers, vocab, pad, seed, ids, strided=None, threads=(1, 2, 3)):
    """native (float64 path where allowed, reciprocal path, several thread counts) == torch == reference."""
    mapping = NgramHashMapping(ev, n, heads, heads, layers, pad, seed, vocab)
    expected = ReferenceHash(ev, n, heads, layers, pad, seed, vocab).hash(ids)
    x = torch.from_numpy(ids) if strided is None else strided
    consts = mapping._native_constants()
    outs = {"auto": mapping.hash(x), "native": mapping.hash(x, backend="native"),
            "torch": mapping.hash(x, backend="torch")}
    for f64 in sorted({False, consts.f64}):
        for t in threads:
            rows = native_hash.hash_rows(x.to(torch.int64), consts, threads=t, f64=f64)
            outs[f"f64={f64} threads={t}"] = dict(zip(layers, rows.unbind(0)))
    for name, out in outs.items():
        assert list(out) == list(layers), name
        for layer in layers:
            assert out[layer].dtype == torch.int64 and tuple(out[layer].shape) == (*ids.shape, (n - 1) * heads)
            np.testing.assert_array_equal(out[layer].numpy(), expected[layer], err_msg=name)
    return mapping


def test_demo_configuration_at_the_top_of_the_vocabulary():
    """The demo's sizes with ids at the vocabulary top, where every product wraps around int64."""
    vocab = 99_548
    ids = np.random.default_rng(0).integers(0, vocab, size=(5, 700))
    ids[:, :50] = vocab - 1
    ids[1] = vocab - 1 - np.arange(700) % 3
    mapping = check([129280 * 5] * 2, 3, 8, [1, 15], vocab, 2, 0, ids)
    assert mapping._native_constants().f64


@pytest.mark.parametrize("ev, expect_f64", [
    ([F64_MIN_PRIME - 1, F64_MIN_PRIME + 5], False),  # the first prime is just below the float64 bound
    ([F64_MIN_PRIME, 50_000], True),                  # primes just above 2**13
    ([(1 << 31) - 3000, (1 << 31) - 1500], True),     # primes just below 2**31
    ([(1 << 31) - 40, (1 << 31) + 5], False),         # heads on both sides of 2**31
    ([(1 << 32) - 30, 1 << 40], False),               # primes around 2**32 and far above it
    ([(1 << 62) - 200, (1 << 62) - 1000], False),     # the largest tables the API allows
])
def test_prime_ranges_both_modulo_paths(ev, expect_f64):
    rng = np.random.default_rng(3)
    ids = rng.integers(I64.min, I64.max, size=(3, 90), endpoint=True)  # every sign and size of mix
    ids[1] = rng.integers(0, 129_280, size=90)
    mapping = check(ev, 3, 4, [0, 7], 129_280, 11, 5, ids)
    assert mapping._native_constants().f64 == expect_f64


@pytest.mark.parametrize("shape", [(1, 1), (1, 2), (4, 1), (1, 257), (3, 5)])
@pytest.mark.parametrize("n", [2, 3, 4])
def test_short_and_single_row_batches(shape, n):
    """T=1 and T < N (only pad ids behind), B=1; thread counts above the number of positions."""
    ids = np.random.default_rng(shape[1]).integers(0, 1000, size=shape)
    check([20_011 + 100 * k for k in range(n - 1)], n, 3, [2, 4], 1000, 999, 1, ids, threads=(1, 8))


def test_head_counts_beyond_the_unrolled_ones():
    ids = np.random.default_rng(1).integers(0, 5000, size=(2, 40))
    for heads in [3, 5, 16, 19]:
        check([40_000, 60_000], 3, heads, [0], 5000, 0, 2, ids, threads=(1, 2))


def test_strided_inputs_hash_like_contiguous_ones():
    base = np.random.default_rng(4).integers(0, 99_000, size=(6, 80))
    cases = {
        "transposed": torch.from_numpy(np.ascontiguousarray(base.T)).t(),
        "every other position": torch.from_numpy(np.repeat(base, 2, axis=1))[:, ::2],
        "every other row": torch.from_numpy(np.repeat(base, 2, axis=0))[::2],
        "column window": torch.from_numpy(np.concatenate([base, base], axis=1))[:, :80],
        "int32": torch.from_numpy(base.astype(np.int32)),
    }
    for name, x in cases.items():
        assert torch.equal(x.to(torch.int64), torch.from_numpy(base)), name
        check([129280 * 5] * 2, 3, 8, [1, 15], 99_000, 2, 0, base, strided=x, threads=(1, 2))


def test_a_big_batch_over_several_threads_and_chunks():
    """More positions than one thread chunk, not a multiple of it: every chunk boundary is exact."""
    ids = np.random.default_rng(5).integers(0, 99_548, size=(7, 1001))
    check([129280 * 5] * 2, 3, 8, [1, 15], 99_548, 2, 0, ids, threads=(1, 2, 5))


def test_empty_batch():
    m = NgramHashMapping([50_000], 2, 2, 2, [0], 0, 0, 100)
    for shape in [(0, 5), (3, 0)]:
        out = m.hash(torch.zeros(shape, dtype=torch.int64))
        assert tuple(out[0].shape) == (*shape, 2)


def test_backend_choice_and_errors(monkeypatch):
    m = NgramHashMapping([50_000], 2, 2, 2, [0], 0, 0, 100)
    ids = torch.arange(10).view(2, 5)
    with pytest.raises(CogsimError, match="^backend"):
        m.hash(ids, backend="numpy")
    native = m.hash(ids, backend="native")[0]
    monkeypatch.setenv("COGSIM_ENGRAM_NATIVE", "0")
    native_hash.LIBRARY.reset()
    try:
        assert native_hash.library() is None and "COGSIM_ENGRAM_NATIVE=0" in native_hash.status()
        assert torch.equal(m.hash(ids)[0], native)  # auto falls back to the torch path
        with pytest.raises(CogsimError, match="^backend: the native hash kernel cannot run"):
            m.hash(ids, backend="native")
    finally:
        monkeypatch.delenv("COGSIM_ENGRAM_NATIVE")
        native_hash.LIBRARY.reset()
    assert native_hash.library() is not None and native_hash.status() == "native kernels: available"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_ids_keep_the_torch_path():
    m = NgramHashMapping([50_000], 2, 2, 2, [0], 0, 0, 100)
    ids = torch.arange(10).view(2, 5)
    out = m.hash(ids.cuda())[0]
    assert out.device.type == "cuda" and torch.equal(out.cpu(), m.hash(ids)[0])
    with pytest.raises(CogsimError, match="cuda"):
        m.hash(ids.cuda(), backend="native")
