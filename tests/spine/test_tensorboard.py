"""``run --tensorboard`` / ``train.tensorboard: true``: the metrics also go to TensorBoard event
files (read back here), and a run without the tensorboard package goes on and says so in one line."""
from __future__ import annotations

import json
import sys

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from cogsim.cli import main
from cogsim.train import tensorboard

TINY = ["--seq-len", "16", "--batch-size", "2", "--quiet", "--no-viz", "--set", "data.probe_count=0",
        "--set", "train.log_every=2", "--set", "train.eval_every=3"]


def events(run_dir) -> dict[str, dict[int, float]]:
    acc = EventAccumulator(str(run_dir / tensorboard.FOLDER))
    acc.Reload()
    return {t: {e.step: e.value for e in acc.Scalars(t)} for t in acc.Tags()["scalars"]}


def metrics(run_dir, key) -> dict[int, float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r[key] for r in rows if key in r}


def test_events_hold_the_metrics(tiny_arch, tiny_corpus, tmp_path):
    out = tmp_path / "run"
    assert main(["run", str(tiny_arch), "--data", str(tiny_corpus), "--steps", "6", "--out", str(out),
                 "--tensorboard", *TINY]) == 0
    got = events(out)
    assert {"train/loss", "train/lr", "train/tokens_per_s", "val/loss", "val/bpb"} <= set(got)
    for tag, key in (("train/loss", "loss"), ("train/lr", "lr"), ("val/loss", "val_loss"), ("val/bpb", "val_bpb")):
        want = metrics(out, key)
        assert set(got[tag]) == set(want) and want
        assert all(got[tag][s] == pytest.approx(want[s], rel=1e-6) for s in want)  # float32 in the event file


def test_resume_turns_events_on_and_keeps_steps_once(tiny_arch, tiny_corpus, tmp_path):
    out = tmp_path / "run"
    base = ["run", str(tiny_arch), "--data", str(tiny_corpus), "--steps", "6", "--out", str(out), *TINY]
    assert main([*base, "--stop-after", "2"]) == 0  # no events yet
    assert not (out / tensorboard.FOLDER).exists()
    assert main([*base, "--resume", "--set", "train.tensorboard=true"]) == 0
    assert sorted(events(out)["train/loss"]) == [4, 6]  # the steps trained after the resume


def test_without_the_package_the_run_goes_on(tiny_arch, tiny_corpus, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as when not installed
    assert not tensorboard.available()
    out = tmp_path / "run"
    assert main(["run", str(tiny_arch), "--data", str(tiny_corpus), "--steps", "4", "--out", str(out),
                 "--tensorboard", *TINY]) == 0
    err = capsys.readouterr().err
    assert err == f"cogsim run: note: train.tensorboard: {tensorboard.MISSING}\n"
    assert (out / "summary.json").exists() and not (out / tensorboard.FOLDER).exists()
