"""The ``engram`` component: lookups, causality, prefetch equivalence, compression, traces."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import tokenizers
import torch

import cogsim
from cogsim.component import Context
from cogsim.engram import compression
from cogsim.engram.component import EngramComponent, EngramParams
from cogsim.engram.hashing import NgramHashMapping
from cogsim.errors import CogsimError
from cogsim.registry import registry
from cogsim.trace import Recorder
from engram_tables_harness import SIZES, TinyLM, all_rows, batches, tiny_params, train


def test_registered_ports_and_defaults():
    cls = registry.get("engram")
    assert cls is EngramComponent and cls.residual
    inputs, outputs = cls.ports(EngramParams(), SIZES)
    assert inputs["x"].kind == "hidden" and inputs["x"].size == 32
    assert inputs["ids"].kind == "ids" and inputs["ids"].required
    assert outputs["out"].kind == "hidden" and outputs["out"].size == 32


@pytest.mark.parametrize("bad,field", [(dict(max_ngram_size=1), "max_ngram_size"),
                                       (dict(n_embed_per_ngram=10, n_head_per_ngram=4), "n_embed_per_ngram"),
                                       (dict(engram_vocab_size=[100]), "engram_vocab_size"),
                                       (dict(layer_ids=[0, 2]), "layer_ids"),
                                       (dict(lr_multiplier=0.0), "lr_multiplier")])
def test_bad_params_name_their_field(bad, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        EngramParams(**bad)


def test_bad_sizes_name_their_field():
    with pytest.raises(CogsimError, match="^branches:"):
        EngramComponent(tiny_params(branches=3), SIZES)
    with pytest.raises(CogsimError, match="^pad_id:"):
        EngramComponent(tiny_params(pad_id=64), SIZES)


def test_memory_vector_is_the_hashed_rows_of_every_order_and_head():
    comp = EngramComponent(tiny_params(layer_id=3, layer_ids=[1, 3]), SIZES)
    ids = torch.randint(0, 64, (2, 12))
    mapping = NgramHashMapping([97, 89], 3, 16, 2, [1, 3], pad_id=0, seed=5, compressed_vocab_size=64)
    hashed = mapping.hash(ids)[3]  # [B, T, 4]
    sizes = [p for order in mapping.vocab_size_across_layers[3] for p in order]
    assert comp.table.rows == sum(sizes)
    offsets = torch.tensor([0] + sizes[:-1]).cumsum(0)
    fetched = comp.prefetcher.fetch(ids, "cpu")
    e = fetched.staged[fetched.inverse]  # [B, T, 4, 8]
    table = comp.table.weight
    for h in range(4):
        assert torch.equal(e[:, :, h], table[hashed[..., h] + offsets[h]])
    assert len(fetched.rows) == len(torch.unique(hashed + offsets))


@pytest.mark.parametrize("placement", ["device", "host"])
def test_component_is_causal(placement):
    model = TinyLM(placement=placement, branches=2)
    train(model, batches(2))  # trained rows and a non-zero conv
    model.eval()
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(0, 64, (2, 12), generator=g)
    x = torch.randn(2, 12, 32, generator=g)
    with torch.no_grad():
        out = model.engram({"x": x, "ids": ids}, Context())["out"]
        for t in (0, 5, 11):
            ids2, x2 = ids.clone(), x.clone()
            ids2[:, t + 1:] = torch.randint(0, 64, ids2[:, t + 1:].shape, generator=g)
            x2[:, t + 1:] = torch.randn(x2[:, t + 1:].shape, generator=g)
            out2 = model.engram({"x": x2, "ids": ids2}, Context())["out"]
            assert torch.equal(out[:, : t + 1], out2[:, : t + 1])
            if t < 11:
                assert not torch.equal(out[:, t + 1:], out2[:, t + 1:])


@pytest.mark.parametrize("placement", ["device", "host"])
def test_prefetch_gives_identical_training(placement):
    data = batches(3, seed=2) * 2
    runs = {}
    for mode in ("none", "before", "ahead"):
        model = TinyLM(placement=placement)
        runs[mode] = (train(model, data, prefetch=mode), all_rows(model), model.engram.prefetcher.stats)
    for mode in ("before", "ahead"):
        assert runs[mode][0] == runs["none"][0]
        assert torch.equal(runs[mode][1], runs["none"][1])
    assert runs["none"][2]["prefetched"] == 0 and runs["none"][2]["synchronous"] == 6
    assert runs["before"][2]["prefetched"] == 6
    assert runs["ahead"][2]["prefetched"] == 6 and runs["ahead"][2]["refreshed_rows"] > 0


def test_prefetch_of_other_ids_falls_back_and_cycles_reuse_rows():
    model = TinyLM(placement="host")
    a, b = batches(2)
    model.engram.prefetch(a[:, :-1])
    with torch.no_grad():
        model(b[:, :-1])
        model(b[:, :-1])  # a second cycle over the same ids reuses the rows
    assert model.engram.prefetcher.stats == {"prefetched": 0, "synchronous": 1, "reused": 1, "refreshed_rows": 0,
                                             "ahead": 0}


def test_two_forwards_before_a_step_sum_their_row_gradients():
    data = batches(1, seed=8)[0]
    x, y = data[:, :-1], data[:, 1:]
    once, twice = TinyLM(), TinyLM()
    for model, reps in ((once, 1), (twice, 2)):
        for _ in range(reps):
            loss = torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten()) / reps
            loss.backward()
    # the row gradients of both forwards are summed before the one row-wise step
    rows_once, grad_once = once.engram._grads[0][:2]
    twice.engram.sparse_step(0.1)
    once.engram.sparse_step(0.1)
    torch.testing.assert_close(all_rows(once), all_rows(twice))
    assert len(rows_once) == len(torch.unique(once.engram.table_rows(x)))


def test_token_compression_changes_hashing_and_is_checkpointed():
    comp = EngramComponent(tiny_params(), SIZES)
    ids = torch.randint(0, 64, (2, 12))
    base = comp.table_rows(ids)
    lookup = np.arange(64) // 2  # ids 2k and 2k+1 share compressed id k
    comp.set_token_compression(lookup)
    assert comp.hash_mapping.compressed_vocab_size == 32
    merged = comp.table_rows(ids)
    assert not torch.equal(merged, base)
    assert torch.equal(comp.table_rows(ids ^ 1), merged)  # partners are indistinguishable now
    state = comp.state_dict()
    assert torch.equal(state["token_compression"], torch.from_numpy(lookup))
    fresh = EngramComponent(tiny_params(), SIZES)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.table_rows(ids), merged)
    off = EngramComponent(tiny_params(compression=False), SIZES)
    off.set_token_compression(lookup)
    assert torch.equal(off.table_rows(ids), base)
    with pytest.raises(CogsimError, match="without gaps"):
        comp.set_token_compression(np.arange(64) * 2)


def test_attach_tokenizer_uses_the_compressed_tokenizer():
    vocab = {t: i for i, t in enumerate(["[PAD]", "a", "A", "b", " a", "B", "c", "ab"])}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[PAD]"))
    comp = EngramComponent(tiny_params(), SIZES)
    comp.attach_tokenizer(tok)
    expected = compression.CompressedTokenizer(tok).lookup_table
    assert torch.equal(comp.token_compression[: len(expected)], torch.from_numpy(expected))
    assert comp.token_compression[1] == comp.token_compression[2]  # "a" and "A" merge


def test_traces_gates_rows_and_collisions():
    comp = EngramComponent(tiny_params(engram_vocab_size=[5, 3]), SIZES)  # tiny heads: many collisions
    ids = torch.randint(0, 64, (1, 12))
    x = torch.randn(1, 12, 32)
    rec = Recorder()
    with torch.no_grad():
        comp({"x": x, "ids": ids}, Context(recorder=rec, node="mem"))
    traces = rec.traces["mem"]
    assert traces["gate"].shape == (1, 12, 2)
    rows = comp.table_rows(ids)[0]
    assert traces["rows_touched"].item() == len(torch.unique(rows))
    padded = [0, 0] + ids[0].tolist()
    for col in range(4):
        order = 2 + col // 2
        grams = [tuple(padded[t + 3 - order: t + 3]) for t in range(12)]
        distinct = {g: set() for g in grams}
        for g, r in zip(grams, rows[:, col].tolist()):
            distinct[g].add(r)
        assert all(len(r) == 1 for r in distinct.values())  # one row per n-gram and head
        assert traces["collisions"][col].item() == len(distinct) - len({r for s in distinct.values() for r in s})
    assert traces["collisions"].sum() > 0
    quiet = Recorder(nodes=["other"])
    comp({"x": x, "ids": ids}, Context(recorder=quiet, node="mem"))
    assert not quiet.traces


def test_deepcopy_of_a_host_component_trains_alike():
    model = TinyLM(placement="host")
    twin = copy.deepcopy(model)
    data = batches(2)
    assert train(model, data, prefetch="before") == train(twin, data, prefetch="before")


ENGRAM_ARCH = """\
name: engram_tiny
model: {d_model: 32, n_heads: 2, seq_len: 16, vocab_size: 300}
nodes:
  embed: {type: embedding}
  block1: {type: block}
  mem: {type: engram, n_embed_per_ngram: 16, n_head_per_ngram: 2, engram_vocab_size: %s, branches: 2}
  block2: {type: block}
  head: {type: lm_head}
stack: [embed, block1, mem, block2, head]
"""


def test_causal_inside_a_model_built_from_yaml(write_arch):
    model = cogsim.build_model(write_arch(ENGRAM_ARCH % "[101, 103]"))
    mem = model.nodes["mem"]
    with torch.no_grad():
        mem.fusion.short_conv.weight.normal_(0, 0.5)
    model.eval()
    ids = torch.randint(0, 300, (2, 16))
    with torch.no_grad():
        logits = model(ids)
        for t in (3, 9):
            later = ids.clone()
            later[:, t + 1:] = (later[:, t + 1:] + 7) % 300
            other = model(later)
            assert torch.equal(logits[:, : t + 1], other[:, : t + 1])
            assert not torch.equal(logits[:, t + 1:], other[:, t + 1:])
        _, traces = model.trace(ids)
    assert traces["mem"]["gate"].shape == (1, 16, 2)


def test_impossible_table_in_a_yaml_names_file_line_and_node(write_arch):
    path = write_arch(ENGRAM_ARCH % "[1000000000000, 1000000000000]")
    with pytest.raises(CogsimError) as err:
        cogsim.build_model(path)
    message = str(err.value)
    assert message.startswith(f"{path}:6: node 'mem': engram_vocab_size: device table needs"), message
    assert "free RAM" in message and "\n" not in message
