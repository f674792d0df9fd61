"""N-gram hashing: bit-exact with the independent NumPy reference, primes, layout and errors."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from sympy import isprime

from cogsim.engram import NgramHashMapping, native_hash
from cogsim.engram.hashing import FAST_MOD_MIN_PRIME
from cogsim.engram.primes import is_prime
from cogsim.engram.reference import ReferenceHash, reference_multipliers
from cogsim.errors import CogsimError

INT64_MAX = np.iinfo(np.int64).max

# (engram_vocab_size, max_ngram_size, n_head_per_ngram, layer_ids, compressed_vocab_size, pad_id, seed)
CONFIGS = [
    ([129280 * 5, 129280 * 5], 3, 8, [1, 15], 99_983, 2, 0),  # the demo's sizes, ~23% compression
    ([1_000_003], 2, 1, [0], 130_000, 0, 7),
    ([700_001, 1_500_000, 3_000_017], 4, 3, [0, 2, 5], 128_000, 127_999, 42),
    ([2_500_000, 2_500_000, 2_500_000], 4, 8, [3, 4], 120_000, 1, 3),  # 4-grams, 8 heads, shared sizes
    ([(1 << 30) - 40, 3_000_000_000], 3, 2, [0, 1], 129_280, 5, 9),  # primes above 2**30: int64 remainder
    ([11, 13], 3, 4, [0, 1, 2], 50, 3, 1),  # toy tables: small primes take the exact remainder path
    ([100, 5_000_000], 3, 2, [9], 2, 1, 5),  # mixed small and large primes, a two-token vocabulary
]


#: Both CPU implementations; the native one is skipped where no C compiler is available.
BACKENDS = [pytest.param("native", marks=pytest.mark.skipif(native_hash.library() is None,
                                                             reason="native hash kernel unavailable")), "torch"]


def make(config):
    ev, n, heads, layers, vocab, pad, seed = config
    fast = NgramHashMapping(ev, n, heads * 4, heads, layers, pad, seed, vocab)
    ref = ReferenceHash(ev, n, heads, layers, pad, seed, vocab)
    return fast, ref


def ids_for(vocab, shape, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab, size=shape)
    ids[:, : min(8, shape[1])] = vocab - 1  # top of the vocabulary: products wrap around int64
    ids[0, -3:] = [vocab - 2, vocab - 1, 0][-min(3, shape[1]):]
    return ids


def assert_same(fast_out, ref_out, layers, shape, heads_per_layer):
    assert list(fast_out) == list(layers)
    for layer in layers:
        out = fast_out[layer]
        assert out.dtype == torch.int64 and tuple(out.shape) == (*shape, heads_per_layer)
        np.testing.assert_array_equal(out.cpu().numpy(), ref_out[layer])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"N{c[1]}-H{c[2]}-L{len(c[3])}-V{c[4]}")
def test_bit_exact_with_reference(config, backend):
    fast, ref = make(config)
    assert fast.vocab_size_across_layers == ref.primes
    for layer in config[3]:
        np.testing.assert_array_equal(fast.layer_multipliers[layer], ref.multipliers[layer])
    for shape in [(2, 37), (1, 1), (3, 300)]:
        ids = ids_for(config[4], shape)
        assert_same(fast.hash(ids, backend=backend), ref.hash(ids), config[3], shape, fast.n_heads_per_layer)


def test_products_really_wrap_and_both_modulo_paths_are_exercised():
    fast, _ = make(CONFIGS[0])
    m = fast.layer_multipliers[1].astype(object)
    assert max(int(v) * (CONFIGS[0][4] - 1) for v in m) > 2**62  # near int64 overflow at the top ids
    uses_fast = [make(config)[0]._fast_mod for config in CONFIGS]
    assert uses_fast == [True, True, True, True, False, False, False]
    assert min(p for order in fast.vocab_size_across_layers[1] for p in order) >= FAST_MOD_MIN_PRIME


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("config", [CONFIGS[0], CONFIGS[4], CONFIGS[6]], ids=["fast", "small-primes", "big-primes"])
def test_any_int64_ids_are_exact(config, backend):
    """Ids outside the vocabulary (e.g. negative padding markers) still hash like the reference:
    full-range int64 tokens drive the mix through every sign and magnitude."""
    fast, ref = make(config)
    rng = np.random.default_rng(1)
    ids = rng.integers(np.iinfo(np.int64).min, INT64_MAX, size=(4, 64), endpoint=True)
    ids[0, :6] = [np.iinfo(np.int64).min, INT64_MAX, -1, 0, -100, 1]
    assert_same(fast.hash(ids, backend=backend), ref.hash(ids), config[3], ids.shape, fast.n_heads_per_layer)


def test_chunked_fast_path_is_exact():
    fast, ref = make(CONFIGS[0])
    fast.chunk_elements = 7 * fast.n_heads_per_layer * 2  # 7 positions a chunk, a partial last chunk
    ids = ids_for(CONFIGS[0][4], (3, 45))
    assert_same(fast.hash(ids, backend="torch"), ref.hash(ids), CONFIGS[0][3], ids.shape, fast.n_heads_per_layer)


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_threads_get_their_own_scratch(backend):
    import threading
    fast, ref = make(CONFIGS[0])
    fast.chunk_elements = 64 * fast.n_heads_per_layer * 2
    batches = [ids_for(CONFIGS[0][4], (2, 300), seed=s) for s in range(4)]
    expected = [ref.hash(b) for b in batches]
    failures = []

    def work(i):
        for _ in range(5):
            out = fast.hash(batches[i], backend=backend)
            if not all(np.array_equal(out[layer].numpy(), expected[i][layer]) for layer in CONFIGS[0][3]):
                failures.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


def test_primes_are_prime_unique_and_in_search_order():
    config = CONFIGS[2]
    fast, _ = make(config)
    ev, n = config[0], config[1]
    seen = []
    for layer in config[3]:
        assert len(fast.vocab_size_across_layers[layer]) == n - 1
        for order, heads in enumerate(fast.vocab_size_across_layers[layer]):
            assert heads == sorted(heads) and heads[0] > ev[order] - 1
            for p in heads:
                assert isprime(p) and is_prime(p)
            # each head took the first prime above its start that no earlier head took
            start = ev[order] - 1
            for p in heads:
                skipped = [c for c in range(start + 1, p) if isprime(c)]
                assert all(c in seen for c in skipped)
                seen.append(p)
                start = p
    assert len(seen) == len(set(seen))


def test_prime_search_by_hand():
    m = NgramHashMapping([10], 2, 3, 3, [0, 1], 0, 0, 5)
    assert m.vocab_size_across_layers == {0: [[11, 13, 17]], 1: [[19, 23, 29]]}
    m = NgramHashMapping([10, 10], 3, 2, 2, [4], 0, 0, 5)  # the second order restarts above 9
    assert m.vocab_size_across_layers == {4: [[11, 13], [17, 19]]}
    assert [n for n in range(200) if is_prime(n)] == [n for n in range(200) if isprime(n)]
    assert is_prime(2**61 - 1) and not is_prime(3215031751) and not is_prime(2**61 + 1)


def test_multipliers_are_odd_and_bounded():
    for vocab in [2, 50, 129_280, 10**9]:
        mult = NgramHashMapping([1000], 2, 1, 1, [0, 3], 0, 11, vocab).layer_multipliers
        for layer, m in mult.items():
            half_bound = max(1, (INT64_MAX // vocab) // 2)
            assert m.dtype == np.int64 and (m % 2 == 1).all() and (m < 2 * half_bound).all()
            np.testing.assert_array_equal(m, reference_multipliers(11, layer, 2, vocab))


def test_offsets_and_table_rows():
    fast, _ = make(CONFIGS[0])
    sizes = fast.head_sizes(15)
    assert sizes == [p for order in fast.vocab_size_across_layers[15] for p in order]
    offsets = fast.offsets(15)
    assert offsets.dtype == torch.int64 and offsets.tolist() == [sum(sizes[:j]) for j in range(len(sizes))]
    assert fast.table_rows(15) == sum(sizes)
    rows = fast.hash(ids_for(CONFIGS[0][4], (2, 50)))[15] + offsets
    assert int(rows.min()) >= 0 and int(rows.max()) < fast.table_rows(15)
    # every row lands inside its own head's slice of the table
    assert ((rows >= offsets) & (rows < offsets + torch.tensor(sizes))).all()
    assert fast.embed_dim_per_head == 4


def test_inputs_outputs_and_determinism():
    config = CONFIGS[2]
    ids = ids_for(config[4], (2, 33), seed=3)
    a = NgramHashMapping(config[0], config[1], 12, 3, config[3], config[5], config[6], config[4])
    b = NgramHashMapping(config[0], config[1], 12, 3, config[3], config[5], config[6], config[4])
    from_numpy, from_int32 = a.hash(ids), b.hash(torch.from_numpy(ids).to(torch.int32))
    from_list = a.hash(ids.tolist())
    for layer in config[3]:
        assert from_numpy[layer].device.type == "cpu"
        assert torch.equal(from_numpy[layer], from_int32[layer]) and torch.equal(from_numpy[layer], from_list[layer])
        assert torch.equal(from_numpy[layer], a.hash(ids)[layer])  # repeatable
    other_seed = NgramHashMapping(config[0], config[1], 12, 3, config[3], config[5], config[6] + 1, config[4])
    assert not torch.equal(other_seed.hash(ids)[0], from_numpy[0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_position_t_depends_only_on_the_last_n_tokens(backend):
    fast, _ = make(CONFIGS[0])
    ids = torch.from_numpy(ids_for(CONFIGS[0][4], (1, 40)))
    base = fast.hash(ids, backend=backend)[1]
    changed = ids.clone()
    changed[0, 20] = (changed[0, 20] + 1) % CONFIGS[0][4]
    out = fast.hash(changed, backend=backend)[1]
    differs = (out != base).any(-1)[0]
    assert not differs[:20].any() and differs[20] and not differs[23:].any()  # window of N=3 tokens
    # orders: the 2-gram columns see t-1, the 3-gram columns also t-2
    heads = fast.n_head_per_ngram
    assert (out[0, 21, :heads] != base[0, 21, :heads]).any() and (out[0, 22, :heads] == base[0, 22, :heads]).all()
    assert (out[0, 22, heads:] != base[0, 22, heads:]).any()


@pytest.mark.parametrize("backend", BACKENDS)
def test_start_of_sequence_uses_the_pad_id(backend):
    fast, _ = make(CONFIGS[0])
    pad = CONFIGS[0][5]
    seq = torch.tensor([[5, 6, 7]])
    padded = fast.hash(torch.tensor([[pad, pad, 5, 6, 7]]), backend=backend)[1][:, 2:]
    assert torch.equal(fast.hash(seq, backend=backend)[1], padded)


@pytest.mark.parametrize("kwargs, field", [
    (dict(max_ngram_size=1, engram_vocab_size=[]), "max_ngram_size"),
    (dict(engram_vocab_size=[100]), "engram_vocab_size"),
    (dict(engram_vocab_size=[0, 5]), "engram_vocab_size"),
    (dict(n_head_per_ngram=0), "n_head_per_ngram"),
    (dict(n_embed_per_ngram=10), "n_embed_per_ngram"),
    (dict(layer_ids=[]), "layer_ids"),
    (dict(layer_ids=[1, 1]), "layer_ids"),
    (dict(pad_id=1000), "pad_id"),
    (dict(compressed_vocab_size=0, pad_id=0), "compressed_vocab_size"),
    (dict(seed=-5), "seed"),
])
def test_bad_configuration_names_the_field(kwargs, field):
    args = dict(engram_vocab_size=[100, 100], max_ngram_size=3, n_embed_per_ngram=16, n_head_per_ngram=4,
                layer_ids=[0, 1], pad_id=0, seed=0, compressed_vocab_size=1000)
    args.update(kwargs)
    with pytest.raises(CogsimError, match=f"^{field}") as err:
        NgramHashMapping(**args)
    assert isinstance(err.value, ValueError)  # a Params.__post_init__ may let it through


def test_bad_ids_are_clear_errors():
    fast, _ = make(CONFIGS[1])
    with pytest.raises(CogsimError, match="shape"):
        fast.hash(np.arange(5))
    with pytest.raises(CogsimError, match="integer"):
        fast.hash(torch.zeros(2, 3))


def test_from_tokenizer_compresses_the_pad_id():
    class Compressed:
        lookup_table = np.array([0, 0, 1, 2, 1])

        def __len__(self):
            return 3

    m = NgramHashMapping.from_tokenizer(Compressed(), pad_id=4, engram_vocab_size=[50], max_ngram_size=2,
                                        n_embed_per_ngram=4, n_head_per_ngram=2, layer_ids=[0], seed=0)
    assert m.pad_id == 1 and m.compressed_vocab_size == 3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("config", [CONFIGS[0], CONFIGS[4], CONFIGS[6]], ids=["fast", "small-primes", "big-primes"])
def test_cuda_matches_reference_and_stays_on_device(config):
    fast, ref = make(config)
    rng = np.random.default_rng(2)
    ids = rng.integers(np.iinfo(np.int64).min, INT64_MAX, size=(3, 130), endpoint=True)
    ids[1] = ids_for(config[4], (1, 130))[0]
    out = fast.hash(torch.from_numpy(ids).cuda())
    assert all(t.device.type == "cuda" for t in out.values())
    assert_same(out, ref.hash(ids), config[3], ids.shape, fast.n_heads_per_layer)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 4), heads=st.integers(1, 8), layers=st.lists(st.integers(0, 30), min_size=1, max_size=3,
                                                                       unique=True),
       vocab=st.integers(2, 200_000), table=st.integers(1, 3_000_000), seed=st.integers(0, 1000),
       batch=st.integers(1, 3), length=st.integers(1, 40), data=st.data())
def test_property_bit_exact(n, heads, layers, vocab, table, seed, batch, length, data):
    ev = [table + 17 * k for k in range(n - 1)]
    pad = data.draw(st.integers(0, vocab - 1))
    fast = NgramHashMapping(ev, n, heads, heads, layers, pad, seed, vocab)
    ref = ReferenceHash(ev, n, heads, layers, pad, seed, vocab)
    ids = np.random.default_rng(seed).integers(0, vocab, size=(batch, length))
    expected = ref.hash(ids)
    for backend in ["auto", "torch"]:  # auto is the native kernel wherever it is available
        assert_same(fast.hash(ids, backend=backend), expected, layers, ids.shape, fast.n_heads_per_layer)


def test_pickle_and_deepcopy_keep_the_mapping():
    import copy
    import pickle
    fast, ref = make(CONFIGS[0])
    ids = ids_for(CONFIGS[0][4], (2, 20))
    fast.hash(ids)  # fill the caches first
    for clone in (copy.deepcopy(fast), pickle.loads(pickle.dumps(fast))):
        assert clone.vocab_size_across_layers == fast.vocab_size_across_layers
        for backend in ["auto", "torch"]:
            assert_same(clone.hash(ids, backend=backend), ref.hash(ids), CONFIGS[0][3], ids.shape,
                        fast.n_heads_per_layer)
