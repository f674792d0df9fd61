"""Training on a synthetic task: `--task` on every shipped architecture, answers-only loss, exact
resume, task accuracy and chance in summary.json and the report, clear errors."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cogsim.cli import main
from cogsim.data.synthetic import IGNORE, TASKS
from cogsim.graph.spec import read_spec
from cogsim.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURES = sorted((ROOT / "architectures").glob("*.yaml"))
TINY = ["--set", "model.d_model=32", "--set", "model.n_heads=2", "--set", "model.seq_len=48",
        "--set", "train.eval_batches=1", "--set", "train.log_every=1", "--steps", "2", "--batch-size", "2"]
#: a small layout of each task that fits 48 positions
SETS = {"mqar": ["data.gap=8"], "facts": ["data.n_facts=12"], "copy": ["data.delay=8"],
        "motifs": ["data.shared=4", "data.switch=1"], "count": ["data.span=12"]}


def sets(task: str) -> list[str]:
    return [a for s in SETS[task] for a in ("--set", s)]


@pytest.mark.parametrize("arch,task", [(a, sorted(TASKS)[i % len(TASKS)]) for i, a in enumerate(ARCHITECTURES)],
                         ids=lambda v: getattr(v, "stem", v))
def test_task_flag_works_on_every_architecture(arch, task, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", str(arch), "--task", task, *TINY, *sets(task), "--out", str(out), "--quiet",
                 "--no-viz"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["task"] == task and 0 <= summary["task_accuracy"] <= 1 and 0 < summary["task_chance"] < 1
    assert summary["vocab_size"] == read_spec(arch, [f"data.task={task}", *SETS[task],
                                                      "model.seq_len=48"]).task.vocab_size
    assert "val_bpb" not in summary and not (out / "tokenizer.json").exists()
    assert "answer accuracy" in capsys.readouterr().out


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_task_trains_from_the_yaml_data_section(task, write_arch, tmp_path):
    extra = ", ".join(s.replace("data.", "").replace("=", ": ") for s in SETS[task])
    arch = write_arch(f"""\
model: {{d_model: 32, n_heads: 2, seq_len: 48, window: 4}}
train: {{steps: 3, batch_size: 2, eval_every: 3, eval_batches: 1, log_every: 1}}
data: {{task: {task}, {extra}}}
nodes:
  embed: {{type: embedding}}
  block1: {{type: block}}
  head: {{type: lm_head}}
stack: [embed, block1, head]
""")
    summary = Trainer(read_spec(arch), tmp_path / "r", device="cpu").train()
    assert summary["task"] == task and summary["steps"] == 3
    rows = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert all(0 <= r["train_accuracy"] <= 1 for r in rows if "loss" in r)
    assert [r["step"] for r in rows if "task_accuracy" in r] == [0, 3]


def test_the_loss_reaches_answer_positions_only(tiny_arch, tmp_path):
    spec = read_spec(tiny_arch, ["data.task=mqar", "data.gap=4", "data.pairs=2"])
    trainer = Trainer(spec, tmp_path / "r", device="cpu")
    trainer.setup()
    _, y = trainer.sampler.next()
    trainer.sampler.load_state(torch.tensor([0]))
    seen = {}
    forward = trainer.model.forward

    def keep(ids):
        logits = forward(ids)
        logits.retain_grad()
        seen["logits"] = logits
        return logits

    trainer.model.forward = keep
    trainer.train_step()
    grad = seen["logits"].grad
    answer = y != IGNORE
    assert answer.sum() == 2 * 2  # two queries in each of the two rows
    assert torch.all(grad[~answer] == 0) and torch.all(grad[answer].abs().sum(-1) > 0)


def test_task_runs_resume_exactly(tiny_arch, tmp_path):
    sets_ = ["data.task=count", "data.span=6", "data.queries=4", "train.steps=6", "train.eval_every=3"]
    Trainer(read_spec(tiny_arch, sets_), tmp_path / "straight", device="cpu").train()
    Trainer(read_spec(tiny_arch, sets_), tmp_path / "split", device="cpu").train(stop_after=4)
    Trainer(read_spec(tiny_arch, sets_), tmp_path / "split", device="cpu", resume=True).train()
    rows = [[json.loads(line) for line in (tmp_path / d / "metrics.jsonl").read_text().splitlines()]
            for d in ("straight", "split")]
    keep = lambda rs: [(r["step"], r.get("loss"), r.get("train_accuracy"), r.get("val_loss")) for r in rs]
    assert keep(rows[0]) == keep(rows[1])


def test_the_report_shows_task_accuracy_and_chance(tiny_arch, tmp_path):
    out = tmp_path / "r"
    assert main(["run", str(tiny_arch), "--task", "copy", "--set", "data.delay=4", "--set", "data.items=2",
                 "--out", str(out), "--quiet"]) == 0
    page = (out / "report.html").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert "answer accuracy (validation)" in page and f"{summary['task_accuracy']:.3f}" in page
    assert "chance level of the answers" in page and f"{summary['task_chance']:.3f}" in page
    assert "a copy validation sequence" in page  # the figures read a task sequence
    assert main(["viz", str(out), "--out", str(tmp_path / "again")]) == 0  # rebuilt from the run folder


def test_task_mistakes_are_one_line_errors(write_arch, tiny_arch, capsys):
    bad = write_arch("model: {d_model: 32, n_heads: 2}\ndata:\n  task: mqr\nnodes:\n  embed: {type: embedding}\n"
                     "  head: {type: lm_head}\nstack: [embed, head]\n", "bad.yaml")
    assert main(["check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml:3: data: unknown task 'mqr' (did you mean 'mqar'?)" in err and err.count("\n") == 1
    assert main(["run", str(tiny_arch), "--task", "mqar", "--set", "data.gap=100", "--quiet"]) == 2
    assert "too short for 4 pairs at gap 100" in capsys.readouterr().err
    assert main(["check", str(tiny_arch), "--set", "data.task=count", "--set", "data.spam=3"]) == 2
    assert "unknown parameter 'spam' (did you mean 'span'?)" in capsys.readouterr().err
