"""Reading a run folder back: the spec, the trained model, the tokenizer and the metrics."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer

from cogsim.data.tokenizer import token_bytes
from cogsim.errors import CogsimError
from cogsim.graph.build import build_plan
from cogsim.graph.spec import ArchSpec, parse_spec
from cogsim.graph.yamlio import load_yaml
from cogsim.model import CognitiveModel
from cogsim.train import checkpoint, metrics_log


@dataclass
class LoadedRun:
    run_dir: Path
    spec: ArchSpec
    model: CognitiveModel
    tokenizer: Tokenizer  # for a synthetic-task run: the task's Vocabulary
    token_bytes: np.ndarray | None  # None for a synthetic-task run (no text)
    step: int

    def metrics(self) -> list[dict]:
        return metrics_log.read_rows(self.run_dir / "metrics.jsonl")

    def summary(self) -> dict:
        path = self.run_dir / "summary.json"
        return json.loads(path.read_text()) if path.exists() else {}


def read_tokenizer(path: Path) -> Tokenizer:
    """A run's tokenizer file; a missing or damaged one is a one-line error."""
    if not path.is_file():
        raise CogsimError(f"{path}: missing (the run's tokenizer)")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as e:  # the tokenizers library raises plain Exception
        raise CogsimError(f"{path}: unreadable tokenizer ({str(e).splitlines()[0]})") from None


def load_run(run_dir: str | Path, device: str | torch.device = "cpu") -> LoadedRun:
    """Rebuild the model of a run folder from its config, tokenizer (or synthetic task) and checkpoint
    (weights only)."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").exists():
        raise CogsimError(f"{run_dir}: not a run folder (no config.yaml)")
    folder = checkpoint.find(run_dir)
    if folder is None:
        raise CogsimError(f"{run_dir}: no checkpoint in this run folder")
    spec = parse_spec(load_yaml(run_dir / "config.yaml"), str(run_dir / "config.yaml"))
    model_state, extra, record = checkpoint.load(folder)
    if spec.task is not None:
        tokenizer, nbytes = spec.task.vocab, None
        model = CognitiveModel(build_plan(spec, vocab_size=spec.task.vocab_size))
    else:
        tokenizer = read_tokenizer(run_dir / "tokenizer.json")
        nbytes = token_bytes(tokenizer)
        model = CognitiveModel(build_plan(spec, vocab_size=tokenizer.get_vocab_size()))
        model.attach_tokenizer(tokenizer)
    model.attach_run_dir(run_dir)
    checkpoint.restore_model(model, model_state, extra)
    return LoadedRun(run_dir, spec, model.to(device).eval(), tokenizer, nbytes, record["step"])
