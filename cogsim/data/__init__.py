"""Corpora, the tokenizer and token batches (docs/design.md §7)."""
