"""Engram semantic memory (docs/design.md §5.1): tokenizer compression, n-gram hashing, hashed tables."""
from cogsim.engram.compression import CompressedTokenizer
from cogsim.engram.hashing import NgramHashMapping

__all__ = ["CompressedTokenizer", "NgramHashMapping"]
from cogsim.engram.component import EngramComponent, EngramParams  # noqa: E402
from cogsim.engram.sparse_optim import RowwiseAdagrad, RowwiseAdam  # noqa: E402
from cogsim.engram.tables import EngramTable  # noqa: E402

__all__ += ["EngramComponent", "EngramParams", "EngramTable", "RowwiseAdam", "RowwiseAdagrad"]
