"""Shared fixtures: a tiny text corpus, an isolated cache, tiny architecture files."""
from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest
import torch

# Tiny test models run faster on one thread, and one thread is immune to the stalls a second
# OpenMP worker suffers when the machine is busy.
torch.set_num_threads(1)

TINY_SOURCES = ["json/decoder.py", "json/encoder.py", "json/scanner.py", "json/__init__.py", "csv.py",
                "textwrap.py", "colorsys.py", "bisect.py", "keyword.py", "glob.py"]

TINY_ARCH = """\
name: tiny
model: {d_model: 32, n_heads: 2, seq_len: 16, vocab_size: 300}
train: {steps: 6, batch_size: 2, lr: 0.003, warmup: 2, eval_every: 3, eval_batches: 2, checkpoint_every: 3, log_every: 1}
nodes:
  embed: {type: embedding}
  block1: {type: block}
  block2: {type: block}
  head: {type: lm_head}
stack: [embed, block1, block2, head]
"""


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("COGSIM_CACHE", str(tmp_path_factory.getbasetemp() / "cogsim-cache"))
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """A folder of ten small standard-library files (real text, fast to tokenize)."""
    root = tmp_path_factory.mktemp("corpus")
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for name in TINY_SOURCES:
        (root / name.replace("/", "_")).write_text((stdlib / name).read_text(encoding="utf-8"), encoding="utf-8")
    return root


@pytest.fixture
def write_arch(tmp_path):
    """Write YAML text to a file and return its path."""
    def write(text: str, name: str = "arch.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path
    return write


@pytest.fixture
def tiny_arch(write_arch) -> Path:
    return write_arch(TINY_ARCH, "tiny.yaml")
