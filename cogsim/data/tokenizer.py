"""Byte-level BPE trained with ``tokenizers`` on the training split, cached by corpus + vocab size;
encoded splits are cached too. Byte lengths per token make bits per byte exact."""
from __future__ import annotations

import hashlib
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tokenizers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from cogsim.data.corpus import Corpus

EOT = "<|endoftext|>"
FORMAT = "1"  # bump when the tokenizer recipe changes


def cache_dir() -> Path:
    """Where tokenizers and encoded corpora are cached (``COGSIM_CACHE`` or ~/.cache/cogsim)."""
    return Path(os.environ.get("COGSIM_CACHE", Path.home() / ".cache" / "cogsim"))


def _sample(corpus: Corpus, sample_mb: float) -> list[str]:
    """A deterministic spread of training documents up to ``sample_mb`` megabytes."""
    docs = sorted(corpus.train, key=lambda d: zlib.crc32(d[0].encode()))
    out, total, limit = [], 0, int(sample_mb * 1e6)
    for _, text in docs:
        if total >= limit:
            break
        out.append(text[: limit - total])
        total += len(out[-1])
    return out


def train_tokenizer(corpus: Corpus, vocab_size: int, sample_mb: float = 8.0) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_sample(corpus, sample_mb), trainer)
    return tok


def token_bytes(tok: Tokenizer) -> np.ndarray:
    """UTF-8 bytes each token id stands for (byte-level BPE: one symbol per byte; specials 0)."""
    special = {t.content for t in tok.get_added_tokens_decoder().values()}
    out = np.zeros(tok.get_vocab_size(), dtype=np.int64)
    for token, i in tok.get_vocab().items():
        out[i] = 0 if token in special else len(token)
    return out


@dataclass
class TokenData:
    """A tokenizer and the encoded splits (documents joined by the end-of-text token)."""

    tokenizer: Tokenizer
    train: np.ndarray
    val: np.ndarray
    key: str

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()


def _encode(tok: Tokenizer, docs: list[tuple[str, str]]) -> np.ndarray:
    eot = tok.token_to_id(EOT)
    dtype = np.uint16 if tok.get_vocab_size() <= 65535 else np.uint32
    parts = []
    for enc in tok.encode_batch([t for _, t in docs], add_special_tokens=False):
        parts.append(np.asarray(enc.ids, dtype=dtype))
        parts.append(np.asarray([eot], dtype=dtype))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def prepare(corpus: Corpus, vocab_size: int, sample_mb: float = 8.0, cache: Path | None = None) -> TokenData:
    """Load (or train, encode and cache) the tokenizer and token arrays for ``corpus``."""
    cache = cache or cache_dir()
    key = hashlib.sha256(f"{corpus.fingerprint}|{vocab_size}|{sample_mb}|{tokenizers.__version__}|{FORMAT}"
                         .encode()).hexdigest()[:16]
    folder = cache / f"{corpus.name}-{vocab_size}-{key}"
    tok_file, train_file, val_file = folder / "tokenizer.json", folder / "train.npy", folder / "val.npy"
    if tok_file.exists() and train_file.exists() and val_file.exists():
        return TokenData(Tokenizer.from_file(str(tok_file)), np.load(train_file), np.load(val_file), key)
    tok = train_tokenizer(corpus, vocab_size, sample_mb)
    train, val = _encode(tok, corpus.train), _encode(tok, corpus.val)
    folder.mkdir(parents=True, exist_ok=True)
    for path, write in ((train_file, lambda p: np.save(p, train)), (val_file, lambda p: np.save(p, val)),
                        (tok_file, lambda p: tok.save(str(p)))):
        tmp = path.with_name(path.name + ".tmp" + (".npy" if path.suffix == ".npy" else ""))
        write(tmp)
        os.replace(tmp, path)
    return TokenData(tok, train, val, key)
