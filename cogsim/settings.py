"""Validated settings sections of an architecture file: ``model:``, ``train:`` and ``data:``.

Plain dataclasses (no torch) so the spec layer can validate them and the trainer can read them.
"""
from __future__ import annotations

from dataclasses import dataclass

#: Most cognitive cycles a model may run (``model.cycles``): each cycle re-runs every node downstream
#: of a feedback edge, so a forward costs up to this many passes.
MAX_CYCLES = 64


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ValueError(message)


@dataclass
class ModelSettings:
    """Global sizes. ``vocab_size`` is the tokenizer's target; the model uses the tokenizer's size."""

    d_model: int = 256
    n_heads: int = 4
    seq_len: int = 128
    vocab_size: int = 4096
    cycles: int = 1
    window: int | None = None  # default attention window of every block/attention node (null or 0: full)

    def __post_init__(self) -> None:
        _check(self.d_model > 0, f"d_model must be > 0, got {self.d_model}")
        _check(self.n_heads > 0, f"n_heads must be > 0, got {self.n_heads}")
        _check(self.d_model % self.n_heads == 0,
               f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        _check(self.seq_len > 0, f"seq_len must be > 0, got {self.seq_len}")
        _check(self.vocab_size >= 260, f"vocab_size must be ≥ 260 (256 bytes + specials), got {self.vocab_size}")
        _check(1 <= self.cycles <= MAX_CYCLES, f"cycles must be in [1, {MAX_CYCLES}], got {self.cycles}")
        _check(self.window is None or self.window >= 0, f"window must be ≥ 0 (0: full attention), got {self.window}")


@dataclass
class TrainSettings:
    """Optimisation and bookkeeping of a run. The defaults are the product's default budget: the
    flagship trains in about four minutes on a 2-core CPU (300 × 8 × 128 = 307k tokens), the same
    budget as the standard ablation suite (experiments/memory_ablations.yaml)."""

    steps: int = 300
    batch_size: int = 8
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup: int = 30
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    eval_every: int = 100
    eval_batches: int = 16
    checkpoint_every: int = 100
    log_every: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        _check(self.steps > 0, f"steps must be > 0, got {self.steps}")
        _check(self.batch_size > 0, f"batch_size must be > 0, got {self.batch_size}")
        _check(self.lr > 0, f"lr must be > 0, got {self.lr}")
        _check(0 <= self.min_lr_ratio <= 1, f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        _check(self.warmup >= 0, f"warmup must be ≥ 0, got {self.warmup}")
        _check(self.weight_decay >= 0, f"weight_decay must be ≥ 0, got {self.weight_decay}")
        _check(0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, "beta1 and beta2 must be in [0, 1)")
        _check(self.grad_clip >= 0, f"grad_clip must be ≥ 0 (0 = off), got {self.grad_clip}")
        for name in ("eval_every", "eval_batches", "checkpoint_every", "log_every"):
            _check(getattr(self, name) > 0, f"{name} must be > 0, got {getattr(self, name)}")


@dataclass
class DataSettings:
    """Where text comes from and how the tokenizer is trained; or, with ``task``, which synthetic
    task generates the data instead (its own parameters sit beside these: cogsim.data.synthetic)."""

    path: str | None = None  # None: the embedded default corpus (the Python standard library)
    val_percent: float = 5.0  # share of files (or of the text of a single file) kept for validation
    tokenizer_sample_mb: float = 8.0  # training text used to fit the BPE tokenizer
    task_mix: float = 0.0  # share of training windows taken from generated probe-task text (cogsim.data.tasks)
    probe_count: int = 32  # instances per probe task at the end of training (0: no probes)
    task: str | None = None  # a synthetic task (mqar, facts, copy, motifs, count) instead of text; see docs/tasks.md

    def __post_init__(self) -> None:
        _check(0 < self.val_percent < 50, f"val_percent must be in (0, 50), got {self.val_percent}")
        _check(self.tokenizer_sample_mb > 0, f"tokenizer_sample_mb must be > 0, got {self.tokenizer_sample_mb}")
        _check(0 <= self.task_mix <= 0.5, f"task_mix must be in [0, 0.5], got {self.task_mix}")
        _check(self.probe_count >= 0, f"probe_count must be ≥ 0 (0 = no probes), got {self.probe_count}")
