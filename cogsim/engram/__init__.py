"""Engram semantic memory (DESIGN §5.1): tokenizer compression, n-gram hashing, hashed tables."""
from cogsim.engram.compression import CompressedTokenizer
from cogsim.engram.hashing import NgramHashMapping

__all__ = ["CompressedTokenizer", "NgramHashMapping"]
