"""Validated settings sections of an architecture file: ``model:``, ``train:`` and ``data:``.

Plain dataclasses (no torch) so the spec layer can validate them and the trainer can read them.
"""
from __future__ import annotations

from dataclasses import dataclass

from cogsim.bounds import Annotated, Checked, Count, FieldError, Positive, Range, Unit

#: Most cognitive cycles a model may run (``model.cycles``): each cycle re-runs every node downstream
#: of a feedback edge, so a forward costs up to this many passes.
MAX_CYCLES = 64
#: positions an attention layer lets each token see, itself included (0: all of them)
Window = Annotated[int, Range(ge=0, note="0: full attention")]


@dataclass
class ModelSettings(Checked):
    """Global sizes. ``vocab_size`` is the tokenizer's target; the model uses the tokenizer's size."""

    d_model: Count = 256
    n_heads: Count = 4
    seq_len: Count = 128
    vocab_size: Annotated[int, Range(ge=260, note="256 bytes + specials")] = 4096
    cycles: Annotated[int, Range(ge=1, le=MAX_CYCLES)] = 1
    # default attention window of every block/attention node (null or 0: full)
    window: Window | None = None

    def check(self) -> None:
        if self.d_model % self.n_heads:
            raise FieldError("n_heads", f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")


@dataclass
class TrainSettings(Checked):
    """Optimisation and bookkeeping of a run. The defaults are the product's default budget: the
    flagship trains in about four minutes on a 2-core CPU (300 × 8 × 128 = 307k tokens), the same
    budget as the standard ablation suite (experiments/memory_ablations.yaml)."""

    steps: Count = 300
    batch_size: Count = 8
    lr: Positive = 3e-3
    min_lr_ratio: Unit = 0.1
    warmup: Annotated[int, Range(ge=0)] = 30
    weight_decay: Annotated[float, Range(ge=0)] = 0.1
    beta1: Annotated[float, Range(ge=0, lt=1)] = 0.9
    beta2: Annotated[float, Range(ge=0, lt=1)] = 0.95
    grad_clip: Annotated[float, Range(ge=0, note="0: off")] = 1.0
    eval_every: Count = 100
    eval_batches: Count = 16
    checkpoint_every: Count = 100
    log_every: Count = 10
    seed: int = 0
    tensorboard: bool = False  # also write the metrics as TensorBoard events (run folder/tensorboard)


@dataclass
class DataSettings(Checked):
    """Where text comes from and how the tokenizer is trained; or, with ``task``, which synthetic
    task generates the data instead (its own parameters sit beside these: cogsim.data.synthetic)."""

    path: str | None = None  # None: the embedded default corpus (the Python standard library)
    # share of files (or of the text of a single file) kept for validation
    val_percent: Annotated[float, Range(gt=0, lt=50)] = 5.0
    tokenizer_sample_mb: Positive = 8.0  # training text used to fit the BPE tokenizer
    # share of training windows taken from generated probe-task text (cogsim.data.tasks)
    task_mix: Annotated[float, Range(ge=0, le=0.5)] = 0.0
    probe_count: Annotated[int, Range(ge=0, note="0: no probes")] = 32  # instances per probe task after training
    task: str | None = None  # a synthetic task (mqar, facts, copy, motifs, count) instead of text; see docs/tasks.md
