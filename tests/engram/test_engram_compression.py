"""Tokenizer compression: bit-exact with the independent reference and with the rule by hand."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from cogsim.engram import CompressedTokenizer
from cogsim.engram.compression import key_normalizer
from cogsim.engram.reference import reference_compress, reference_lookup_table, reference_normalize
from cogsim.errors import CogsimError

CORPUS = [
    "Hello World! hello world. HELLO, Café café CAFE naïve Naive  résumé Resume\n\n\tTabs   spaces",
    "日本語のテキスト 中文文本 Ελληνικά ΣΊΣΥΦΟΣ σίσυφος Привет мир ПРИВЕТ ÀÉÎÕÜ àéîõü",
    "The the THE don't Don't ﬁne fine Ｆｕｌｌ full ① 1 ½ x²\r\n end .  , ! ?",
]


def byte_level_bpe(vocab_size: int = 700) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<s>", "</s>", "<|User|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS * 20, trainer)
    return tok


def word_level(tokens: list[str], specials: tuple[str, ...] = ()) -> Tokenizer:
    tok = Tokenizer(models.WordLevel({t: i for i, t in enumerate(tokens)}, unk_token=tokens[0]))
    tok.add_special_tokens(list(specials))
    return tok


@pytest.fixture(scope="module")
def bpe():
    return byte_level_bpe()


def test_byte_level_bpe_matches_reference(bpe):
    ct = CompressedTokenizer(bpe)
    ref = reference_lookup_table(bpe)
    assert ct.lookup_table.dtype == np.int64
    np.testing.assert_array_equal(ct.lookup_table, ref)
    assert len(ct) == int(ref.max()) + 1 < bpe.get_vocab_size()
    # ids are numbered by first appearance: the first occurrence of new id k comes before that of k+1
    first = [int(np.flatnonzero(ct.lookup_table == k)[0]) for k in range(len(ct))]
    assert first == sorted(first)
    # the vocabulary really exercises the U+FFFD rule (lone UTF-8 bytes of the byte-level alphabet)
    assert any("\ufffd" in bpe.decode([i], skip_special_tokens=False) for i in range(bpe.get_vocab_size()))


def test_case_and_space_variants_merge_in_bpe(bpe):
    ct = CompressedTokenizer(bpe)
    vocab = bpe.get_vocab()
    for a, b in [("Hello", "hello"), ("ĠWorld", "Ġworld"), ("HELLO", "hello"), ("THE", "the")]:
        if a in vocab and b in vocab:
            assert ct.lookup_table[vocab[a]] == ct.lookup_table[vocab[b]], (a, b)
    assert len({int(ct.lookup_table[vocab[s]]) for s in ["<pad>", "<s>", "</s>"]}) == 3  # specials kept apart


HAND = ["<unk>", "Apple", "apple", "APPLE", " apple ", "café", "cafe", "CAFÉ", " ", "  ", "\t", "\n\n", "\r\n",
        "\u3000", "\x0b", "\x0c", "ﬁ", "fi", "Ａ", "a", "Σ", "σ", "ς", "a\ufffd", "A\ufffd", "x ", "x\u00a0",
        "\ue000", "a .", "a.", "\x1c"]


def test_hand_made_vocabulary_groups():
    tok = word_level(HAND, specials=("<pad>", "<|end|>"))
    ct = CompressedTokenizer(tok)
    np.testing.assert_array_equal(ct.lookup_table, reference_lookup_table(tok))
    new = {t: int(ct.lookup_table[i]) for i, t in enumerate(HAND)}
    same = [("Apple", "apple", "APPLE", " apple "), ("café", "cafe", "CAFÉ"),
            (" ", "  ", "\t", "\n\n", "\r\n", "\u3000", "\ue000"),  # whitespace runs → a lone space stays " "
            ("ﬁ", "fi"), ("Ａ", "a"), ("Σ", "σ"), ("x ", "x\u00a0")]
    for group in same:
        assert len({new[t] for t in group}) == 1, group
    apart = [("σ", "ς"),  # lowercase is per character: no final-sigma rule
             ("a\ufffd", "A\ufffd"),  # U+FFFD keys on the raw token, never normalised
             ("\x0b", "\x0c"), ("\x0b", " "),  # stripped to empty → keyed on the raw text
             ("a .", "a."), ("\x1c", "<unk>")]
    for a, b in apart:
        assert new[a] != new[b], (a, b)
    specials = ct.lookup_table[[tok.token_to_id("<pad>"), tok.token_to_id("<|end|>")]]
    assert len(set(specials.tolist()) | set(new.values())) == len(set(new.values())) + 2
    assert len(ct) == len(set(ct.lookup_table.tolist()))


def test_clean_up_tokenization_spaces_option():
    tok = word_level(["<unk>", "a .", "a.", "do n't", "don't"])
    plain, cleaned = CompressedTokenizer(tok), CompressedTokenizer(tok, clean_up_tokenization_spaces=True)
    assert plain.lookup_table[1] != plain.lookup_table[2]
    assert cleaned.lookup_table[1] == cleaned.lookup_table[2] and cleaned.lookup_table[3] == cleaned.lookup_table[4]
    np.testing.assert_array_equal(cleaned.lookup_table, reference_lookup_table(tok, clean_up=True))


def test_call_maps_numpy_and_torch_and_passes_negatives(bpe):
    ct = CompressedTokenizer(bpe)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, bpe.get_vocab_size(), size=(3, 17))
    ids[0, :4] = -1
    ids[2, 5] = -100
    expected = reference_compress(ct.lookup_table, ids)
    out = ct(ids)
    assert isinstance(out, np.ndarray) and out.dtype == np.int64
    np.testing.assert_array_equal(out, expected)
    assert (out[0, :4] == -1).all() and out[2, 5] == -100
    t = ct(torch.from_numpy(ids).to(torch.int32))
    assert isinstance(t, torch.Tensor) and t.dtype == torch.int64 and t.device.type == "cpu"
    np.testing.assert_array_equal(t.numpy(), expected)
    np.testing.assert_array_equal(ct(ids.tolist()), expected)


def test_out_of_vocabulary_id_is_a_clear_error(bpe):
    ct = CompressedTokenizer(bpe)
    with pytest.raises(CogsimError, match="outside the base vocabulary"):
        ct(np.array([[0, bpe.get_vocab_size()]]))
    with pytest.raises(CogsimError, match="outside the base vocabulary"):
        ct(torch.tensor([bpe.get_vocab_size() + 5]))
    with pytest.raises(CogsimError, match="tokenizer"):
        CompressedTokenizer("deepseek-ai/DeepSeek-V3")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_call_keeps_cuda_device(bpe):
    ct = CompressedTokenizer(bpe)
    ids = torch.tensor([[3, -1, 7]], device="cuda")
    out = ct(ids)
    assert out.device.type == "cuda"
    np.testing.assert_array_equal(out.cpu().numpy(), reference_compress(ct.lookup_table, ids.cpu().numpy()))


_TEXT = st.text(alphabet=st.sampled_from(list(
    "aAzZ éÉèçÇñÑöÖßøØåÅ ΣσςΑάΆ ДдЖж 日本語 \t\n\r\x0b\x0c\x1c\x85\u00a0\u2002\u3000\u2028"
    "\u0301\u0308\u0327ﬁﬂＡｂ①½²\ue000.,!?'")), max_size=12)


@settings(max_examples=200, deadline=None)
@given(_TEXT)
def test_reference_normaliser_agrees_with_tokenizers(text):
    assert reference_normalize(text) == key_normalizer().normalize_str(text)
