"""Corpora, the tokenizer and token batches (DESIGN §7)."""
