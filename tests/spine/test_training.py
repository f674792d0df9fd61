"""Training: determinism, exact resume, the NaN guard, bits per byte, the run folder and CLI."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from cogsim.cli import main
from cogsim.errors import CogsimError
from cogsim.evaluate.metrics import bits_per_byte, evaluate
from cogsim.graph.spec import read_spec
from cogsim.train.trainer import Trainer, TrainingDiverged


def losses(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in rows if "loss" in r], [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r]


def train(arch, corpus, out, overrides=(), stop_after=None, resume=False):
    spec = read_spec(arch, [f"data.path={corpus}", *overrides])
    return Trainer(spec, out, device="cpu", resume=resume).train(stop_after=stop_after)


def test_same_seed_gives_identical_losses(tiny_arch, tiny_corpus, tmp_path):
    train(tiny_arch, tiny_corpus, tmp_path / "a")
    train(tiny_arch, tiny_corpus, tmp_path / "b")
    train(tiny_arch, tiny_corpus, tmp_path / "c", ["train.seed=1"])
    assert losses(tmp_path / "a") == losses(tmp_path / "b")
    assert losses(tmp_path / "a")[0] != losses(tmp_path / "c")[0]


def test_resume_continues_exactly(tiny_arch, tiny_corpus, tmp_path):
    steps = ["train.steps=8", "train.checkpoint_every=100", "train.eval_every=4"]
    train(tiny_arch, tiny_corpus, tmp_path / "straight", steps)
    first = train(tiny_arch, tiny_corpus, tmp_path / "split", steps, stop_after=4)
    assert first["steps"] == 4
    train(tiny_arch, tiny_corpus, tmp_path / "split", steps, resume=True)
    assert losses(tmp_path / "straight") == losses(tmp_path / "split")
    a = load_file(str(tmp_path / "straight" / "checkpoint" / "model.safetensors"))
    b = load_file(str(tmp_path / "split" / "checkpoint" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_after_a_torn_metrics_line_keeps_every_whole_row(tiny_arch, tiny_corpus, tmp_path):
    """A run killed while appending to metrics.jsonl leaves half a row; resuming drops only the
    fragment and ends with the same log as a run that was never interrupted."""
    steps = ["train.steps=8", "train.checkpoint_every=100", "train.eval_every=4"]
    train(tiny_arch, tiny_corpus, tmp_path / "straight", steps)
    train(tiny_arch, tiny_corpus, tmp_path / "torn", steps, stop_after=4)
    with (tmp_path / "torn" / "metrics.jsonl").open("a") as f:
        f.write('{"step": 5, "loss": 3.1')  # the writer died here
    train(tiny_arch, tiny_corpus, tmp_path / "torn", steps, resume=True)
    assert losses(tmp_path / "straight") == losses(tmp_path / "torn")


def test_resume_refuses_a_different_architecture(tiny_arch, tiny_corpus, tmp_path):
    train(tiny_arch, tiny_corpus, tmp_path / "r", stop_after=3)
    with pytest.raises(CogsimError, match="differ from the run saved"):
        train(tiny_arch, tiny_corpus, tmp_path / "r", ["model.d_model=64"], resume=True)
    with pytest.raises(CogsimError, match="already holds a run"):
        train(tiny_arch, tiny_corpus, tmp_path / "r")


def test_nan_guard_keeps_the_last_good_checkpoint(tiny_arch, tiny_corpus, tmp_path):
    out = tmp_path / "nan"
    train(tiny_arch, tiny_corpus, out, ["train.steps=6"], stop_after=3)
    saved = (out / "checkpoint" / "model.safetensors").read_bytes()
    spec = read_spec(tiny_arch, [f"data.path={tiny_corpus}", "train.steps=6"])
    trainer = Trainer(spec, out, device="cpu", resume=True)
    trainer.setup()
    with torch.no_grad():
        trainer.model.nodes["block1"].ffn.down.weight.fill_(float("nan"))
    trainer.setup = lambda: None  # keep the poisoned weights
    with pytest.raises(TrainingDiverged, match=r"loss became nan at step 4.*step 3\) is kept"):
        trainer.train()
    assert (out / "checkpoint" / "model.safetensors").read_bytes() == saved


def test_bits_per_byte_arithmetic():
    # 8 tokens each predicted with probability 1/2 (1 bit each) covering 4 bytes → 2 bits per byte
    assert bits_per_byte(8 * math.log(2), 4) == pytest.approx(2.0)

    class Uniform(torch.nn.Module):
        def forward(self, ids):
            return torch.zeros(*ids.shape, 16)

    x = torch.randint(0, 16, (3, 5))
    y = torch.randint(0, 16, (3, 5))
    nbytes = np.arange(16) % 3 + 1
    got = evaluate(Uniform(), x, y, nbytes, batch_size=2, device=torch.device("cpu"))
    assert got["val_loss"] == pytest.approx(math.log(16))
    assert got["val_bpb"] == pytest.approx(15 * 4 / nbytes[y.numpy()].sum())


def test_cli_run_writes_the_run_folder(tiny_arch, tiny_corpus, tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["run", str(tiny_arch), "--data", str(tiny_corpus), "--steps", "4", "--batch-size", "2",
                 "--seq-len", "16", "--out", str(out), "--quiet", "--no-viz", "--set", "train.eval_every=2"])
    assert code == 0
    text = capsys.readouterr().out
    assert "run summary: tiny" in text and "validation bits/byte" in text
    for name in ("config.yaml", "metrics.jsonl", "tokenizer.json", "summary.json", "checkpoint/model.safetensors",
                 "checkpoint/optimizer.safetensors", "checkpoint/state.json"):
        assert (out / name).exists(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 4 and summary["val_bpb"] > 0
    assert main(["check", str(tiny_arch)]) == 0
    assert main(["graph", str(tiny_arch), "-o", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").stat().st_size > 1000
