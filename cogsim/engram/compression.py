"""Tokenizer compression for Engram (docs/design.md §5.1): ids whose decoded text normalises to the same
key share one compressed id, so "Apple", " apple" and "APPLE" hit the same n-gram rows.

Bit-exact with the reference demo: each id is decoded alone with special tokens kept; text holding
U+FFFD (a partial UTF-8 byte sequence) keys on the raw token string, other text on its normalised
form, or on the decoded text itself where the normalised form is empty. New ids are numbered in
order of first appearance over ids 0..V-1.
"""
from __future__ import annotations

import numpy as np
import torch
from tokenizers import Regex, normalizers

from cogsim.errors import CogsimError

#: Private-use character the normaliser uses to carry a lone space through Strip (as the demo does).
_SENTINEL = "\ue000"

#: transformers' ``clean_up_tokenization`` replacements, applied only when asked for (see below).
_CLEANUP = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
            (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))


def key_normalizer() -> normalizers.Normalizer:
    """The demo's normaliser: NFKC, NFD, strip accents, lowercase, ``[ \\t\\r\\n]+`` → one space,
    a lone space survives Strip (protected by a sentinel), strip, sentinel back to a space."""
    return normalizers.Sequence([
        normalizers.NFKC(),
        normalizers.NFD(),
        normalizers.StripAccents(),
        normalizers.Lowercase(),
        normalizers.Replace(Regex(r"[ \t\r\n]+"), " "),
        normalizers.Replace(Regex(r"^ $"), _SENTINEL),
        normalizers.Strip(),
        normalizers.Replace(_SENTINEL, " "),
    ])


class CompressedTokenizer:
    """Maps base-tokenizer ids to compressed ids (reference demo API).

    ``tokenizer`` is a ``tokenizers.Tokenizer`` or a transformers fast tokenizer (its
    ``backend_tokenizer`` is used). The demo decodes through transformers, which strips spaces
    before punctuation when the tokenizer's ``clean_up_tokenization_spaces`` is on; that setting is
    read from a transformers tokenizer, or given here for a bare ``tokenizers.Tokenizer``.

    ``lookup_table``: int64 numpy array, old id → new id. ``len(self)``: compressed vocabulary size.
    ``self(ids)`` maps numpy arrays, lists or torch tensors (kept on their device); negative ids
    (padding markers) pass through unchanged.
    """

    def __init__(self, tokenizer, *, clean_up_tokenization_spaces: bool | None = None):
        backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
        if not hasattr(backend, "decode_batch") or not hasattr(backend, "id_to_token"):
            raise CogsimError(f"tokenizer: expected a tokenizers.Tokenizer, got {type(tokenizer).__name__}")
        if clean_up_tokenization_spaces is None:
            clean_up_tokenization_spaces = bool(getattr(tokenizer, "clean_up_tokenization_spaces", False))
        self.tokenizer = backend
        self.clean_up_tokenization_spaces = clean_up_tokenization_spaces
        self.normalizer = key_normalizer()
        self.lookup_table, self.num_new_token = self._build_lookup_table()
        self._device_tables: dict[torch.device, torch.Tensor] = {}

    def __len__(self) -> int:
        return self.num_new_token

    @property
    def vocab_size(self) -> int:
        """Size of the base vocabulary (ids the table accepts)."""
        return len(self.lookup_table)

    def key(self, text: str, token_id: int) -> str:
        """The grouping key of one decoded id."""
        if "\ufffd" in text:
            return self.tokenizer.id_to_token(token_id)
        norm = self.normalizer.normalize_str(text)
        return norm if norm else text

    def _build_lookup_table(self) -> tuple[np.ndarray, int]:
        vocab_size = self.tokenizer.get_vocab_size(with_added_tokens=True)
        texts = self.tokenizer.decode_batch([[i] for i in range(vocab_size)], skip_special_tokens=False)
        new_ids: dict[str, int] = {}
        table = np.empty(vocab_size, dtype=np.int64)
        for token_id, text in enumerate(texts):
            if self.clean_up_tokenization_spaces:
                for old, new in _CLEANUP:
                    text = text.replace(old, new)
            table[token_id] = new_ids.setdefault(self.key(text, token_id), len(new_ids))
        return table, len(new_ids)

    def _table_on(self, device: torch.device) -> torch.Tensor:
        table = self._device_tables.get(device)
        if table is None:
            table = self._device_tables[device] = torch.from_numpy(self.lookup_table).to(device)
        return table

    def _check_range(self, top: int) -> None:
        if top >= self.vocab_size:
            raise CogsimError(f"ids: id {top} is outside the base vocabulary of {self.vocab_size} ids")

    def __call__(self, input_ids):
        if isinstance(input_ids, torch.Tensor):
            ids = input_ids.long()
            if ids.device.type == "cpu" and ids.numel():  # on an accelerator, checking would sync
                self._check_range(int(ids.max()))
            table = self._table_on(ids.device)
            return torch.where(ids >= 0, table[ids.clamp(min=0)], ids)
        arr = np.asarray(input_ids, dtype=np.int64)
        if arr.size:
            self._check_range(int(arr.max()))
        return np.where(arr >= 0, self.lookup_table[np.maximum(arr, 0)], arr)
