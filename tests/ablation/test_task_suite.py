"""Task suites (``cogsim ablate --suite`` with ``tasks:``): arms as architecture files with overrides
in order suite < task < arm < command line, paired differences against each task's first arm,
tables per task and together, errors at their line, and the repository's own suite builds."""
from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest

from cogsim.ablation.suite import load_suite, task_variants
from cogsim.cli import main

ROOT = Path(__file__).resolve().parents[2]

WINDOWED = """\
name: tinywin
description: one windowed block
model: {d_model: 16, n_heads: 2, seq_len: 24, vocab_size: 300, window: 2}
train: {steps: 2, batch_size: 2, lr: 0.003, warmup: 1, eval_every: 4, eval_batches: 1, checkpoint_every: 4, log_every: 1}
nodes:
  embed: {type: embedding}
  block1: {type: block}
  head: {type: lm_head}
stack: [embed, block1, head]
"""
SNN = WINDOWED.replace("name: tinywin", "name: tinysnn").replace(
    "  head: {type: lm_head}", "  snn: {type: snn, mode: sequence, neurons: 8, beta: [0.5, 0.99], reset: none}\n"
                               "  head: {type: lm_head}").replace("block1, head]", "block1, snn, head]")


def _suite(write_arch, tasks: str, head: str = "seeds: 2\n") -> Path:
    win, snn = write_arch(WINDOWED, "win.yaml"), write_arch(SNN, "snn.yaml")
    return write_arch(head + "set: {train.batch_size: 3}\n" + tasks.format(win=win, snn=snn), "suite.yaml")


COUNT = """\
tasks:
  count:
    description: markers in the last 8 positions
    steps: 4
    set: {{data.task: count, data.span: 8, data.queries: 2, train.batch_size: 4}}
    arms:
      windowed: {win}
      full_attention: {{architecture: {win}, set: {{model.window: 0}}, description: the ceiling}}
      snn: {snn}
"""


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_arms_read_with_the_overrides_of_suite_task_arm_and_command_line(write_arch):
    suite = load_suite(_suite(write_arch, COUNT))
    assert suite.architecture is None and suite.seeds == [0, 1] and [t.name for t in suite.tasks] == ["count"]
    task = suite.tasks[0]
    assert [a.name for a in task.arms] == ["windowed", "full_attention", "snn"]
    variants = task_variants(task, suite.overrides, ["train.lr=0.01"])
    by = {v.name: v.spec for v in variants}
    for spec in by.values():  # the task's batch size and steps win over the suite's; the command line's lr
        assert (spec.train.batch_size, spec.train.steps, spec.train.lr) == (4, 4, 0.01)
        assert spec.task.name == "count" and spec.task.params.span == 8
    assert by["windowed"].model.window == 2 and by["full_attention"].model.window == 0
    assert variants[1].description == "the ceiling" and variants[0].description == "tinywin: one windowed block"
    assert "snn" in by["snn"].nodes
    assert [v.name for v in task_variants(task, suite.overrides, names=["snn"])] == ["windowed", "snn"]
    assert [v.name for v in task_variants(task, suite.overrides, names=["htm"])] == ["windowed"]  # not its arm


def test_one_variants_list_picks_each_tasks_own_memory_arm(write_arch, capsys):
    """--variants snn,htm over two tasks: each runs the arms it has (one list for the whole suite)."""
    two = COUNT + COUNT.replace("  count:", "  copy:").replace("data.task: count, data.span: 8, data.queries: 2",
                                                                "data.task: copy, data.items: 2, data.delay: 4"
                                                                ).replace("      snn: {snn}", "      htm: {win}"
                                                                          ).replace("tasks:\n", "")
    assert main(["ablate", "--suite", str(_suite(write_arch, two)), "--variants", "snn,htm", "--list"]) == 0
    out = capsys.readouterr().out
    count, copy = out.split("copy:")
    assert "snn" in count and "htm" not in count and "htm" in copy and "snn" not in copy


def test_a_task_suite_compares_every_arm_with_its_first(write_arch, tmp_path, capsys):
    suite = _suite(write_arch, COUNT)
    out, results = tmp_path / "out", tmp_path / "results"
    assert main(["ablate", "--suite", str(suite), "--out", str(out), "--results", str(results), "--quiet"]) == 0
    runs = _rows(out / "count" / "runs.csv")
    assert [(r["variant"], r["seed"]) for r in runs] == [(a, s) for a in ("windowed", "full_attention", "snn")
                                                         for s in "01"]
    assert all(r["steps"] == "4" and 0 <= float(r["task_accuracy"]) <= 1 for r in runs)
    acc = {r["variant"]: r for r in _rows(out / "count" / "ablation.csv") if r["metric"] == "task_accuracy"}
    assert acc["windowed"]["diff"] == ""  # the reference
    for arm in ("full_attention", "snn"):
        mine = {r["seed"]: float(r["task_accuracy"]) for r in runs if r["variant"] == arm}
        floor = {r["seed"]: float(r["task_accuracy"]) for r in runs if r["variant"] == "windowed"}
        assert float(acc[arm]["diff"]) == pytest.approx(sum(mine[s] - floor[s] for s in "01") / 2, abs=1e-5)
    md = (out / "memory_tasks.md").read_text()
    assert "## Task count" in md and "markers in the last 8 positions" in md and "variant − windowed" in md
    assert "synthetic task count (span 8" in md
    assert "over 6 runs; the invocation that finished the suite trained 6 of them in" in md
    for name in ("ablation.md", "ablation.csv", "runs.csv", "ablation.png"):
        assert (results / "count" / name).exists()
    assert (results / "memory_tasks.md").read_text() == md
    capsys.readouterr()
    assert main(["ablate", "--suite", str(suite), "--out", str(out), "--variants", "snn"]) == 0
    printed = capsys.readouterr().out  # finished runs are picked up, not retrained
    assert "snn seed 1: task accuracy" in printed and "already done" in printed and "Δ = variant − windowed" in printed
    assert "every run was already finished" in (out / "count" / "ablation.md").read_text()


def test_motifs_recovery_reaches_the_tables(write_arch, tmp_path):
    tasks = """\
tasks:
  motifs:
    steps: 6
    set: {{data.task: motifs, data.shared: 3, data.noise: 2, data.switch: 3}}
    arms:
      windowed: {win}
      full_attention: {{architecture: {win}, set: {{model.window: 0}}}}
"""
    out = tmp_path / "out"
    assert main(["ablate", "--suite", str(_suite(write_arch, tasks, "seeds: 1\n")), "--out", str(out), "--quiet"]) == 0
    runs = _rows(out / "motifs" / "runs.csv")
    assert {"accuracy_before_switch", "accuracy_after_switch", "recovery_steps"} <= set(runs[0])
    assert all(r["accuracy_before_switch"] != "" for r in runs)  # the switch at step 3 of 6


@pytest.mark.parametrize("text,where,message", [
    ("tasks:\n  count:\n    arms: {{windowed: {win}}}\n    sets: {{}}\n", 6, "unknown field 'sets'"),
    ("tasks:\n  count:\n    arms:\n      windowed: {{set: {{model.window: 0}}}}\n", 6,
     "arm 'windowed': 'architecture' must name an architecture file"),
    ("tasks:\n  count:\n    steps: 0\n    arms: {{windowed: {win}}}\n", 5, "'steps' must be a positive integer"),
    ("tasks:\n  count: {{}}\n", 4, "'arms' must map arm names"),
    ("architecture: {win}\ntasks: {{}}\n", 1, "either 'architecture' (an ablation suite) or 'tasks'"),
])
def test_task_suite_mistakes_are_reported_at_their_line(write_arch, capsys, text, where, message):
    suite = _suite(write_arch, text)
    assert main(["ablate", "--suite", str(suite), "--list"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{suite}:{where}:" in err and message in err


def test_unknown_tasks_and_arms_are_named(write_arch, capsys):
    suite = _suite(write_arch, COUNT)
    assert main(["ablate", "--suite", str(suite), "--tasks", "mqar", "--list"]) == 2
    assert "no task 'mqar'; its tasks are count" in capsys.readouterr().err
    assert main(["ablate", "--suite", str(suite), "--variants", "htm", "--list"]) == 2
    assert "no task picked has an arm 'htm'; their arms are windowed, full_attention, snn" in capsys.readouterr().err
    assert main(["ablate", str(write_arch(WINDOWED, "w.yaml")), "--tasks", "count", "--list"]) == 2
    assert "--tasks needs a task suite" in capsys.readouterr().err


def test_the_memory_task_suite_builds_every_arm(monkeypatch, capsys):
    """experiments/memory_tasks.yaml: every arm of every task builds, the floor comes first, and the
    memory arms keep the floor's sizes and window (no extra attention, no wider window)."""
    monkeypatch.chdir(ROOT)
    suite = load_suite("experiments/memory_tasks.yaml")
    for task in suite.tasks:
        variants = task_variants(task, suite.overrides)
        assert variants[0].name == "windowed" and variants[1].name == "full_attention"
        floor = variants[0].spec
        blocks = lambda spec: sum(n.type == "block" for n in spec.nodes.values())  # noqa: E731
        for v in variants:
            assert v.spec.task.name == task.name
            assert (v.spec.model.d_model, v.spec.model.n_heads, blocks(v.spec)) == \
                (floor.model.d_model, floor.model.n_heads, blocks(floor))
            assert v.spec.model.window == (0 if v.name == "full_attention" else floor.model.window)
            assert all(n.params.get("window") in (None, v.spec.model.window) for n in v.spec.nodes.values()
                       if n.type in ("block", "attention"))
    assert main(["ablate", "--suite", "experiments/memory_tasks.yaml", "--list"]) == 0
    assert "runs (3 seeds) under runs/memory-tasks" in capsys.readouterr().out


def test_the_memory_task_suite_asks_beyond_the_floors_reach_with_each_tasks_memory(monkeypatch):
    """Five tasks; each puts what it asks about beyond the floor's 4 x (8 - 1) = 28 tokens, and its
    memory arm holds the memory system whose job the task is."""
    monkeypatch.chdir(ROOT)
    suite = load_suite("experiments/memory_tasks.yaml")
    memory = {"motifs": ("htm", "htm"), "count": ("snn", "snn"), "facts": ("engram", "engram"),
              "mqar": ("workspace", "workspace"), "copy": ("workspace", "workspace")}
    assert [t.name for t in suite.tasks] == ["motifs", "count", "mqar", "facts", "copy"]
    for task in suite.tasks:
        by = {v.name: v.spec for v in task_variants(task, suite.overrides)}
        floor = by["windowed"]
        reach = 4 * (floor.model.window - 1)
        distance = {"motifs": "shared", "count": "span", "mqar": "gap", "copy": "delay"}.get(task.name)
        if distance:
            assert getattr(floor.task.params, distance) > reach
        if task.name in memory:
            arm, node_type = memory[task.name]
            assert node_type in {n.type for n in by[arm].nodes.values()}
        assert "all_memories" in by


def _capacity():
    spec = importlib.util.spec_from_file_location("capacity_curve", ROOT / "experiments" / "capacity_curve.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


WORKSPACE = WINDOWED.replace("name: tinywin", "name: tinyws").replace(
    "  head: {type: lm_head}", "  workspace: {type: workspace, slots: 7, top_k: 2}\n  head: {type: lm_head}").replace(
    "block1, head]", "block1, workspace, head]") + "edges:\n  - block1.delta -> workspace.candidates\n"


def test_the_capacity_curve_runs_every_slot_count_and_load(write_arch, tmp_path, capsys):
    arch, out, results = write_arch(WORKSPACE, "ws.yaml"), tmp_path / "out", tmp_path / "results"
    argv = ["--arch", str(arch), "--slots", "2,3", "--items", "1,2", "--delay", "4", "--seq-len", "12",
            "--steps", "2", "--batch-size", "2", "--answers", "4", "--seeds", "0,3", "--jobs", "1", "--out", str(out),
            "--results", str(results)]
    capacity = _capacity()
    assert capacity.main(argv) == 0
    rows = _rows(results / "capacity_curve.csv")
    assert sorted((r["slots"], r["items"], r["seed"]) for r in rows) == [
        (k, n, s) for k in ("2", "3") for n in ("1", "2") for s in ("0", "3")]  # every point, every seed
    assert all(0 <= float(r["task_accuracy"]) <= 1 and r["steps"] == "2" for r in rows)
    # at least 4 answers a step: 1 item → 4 sequences, 2 items → the 2 asked for
    assert {(r["items"], r["batch_size"]) for r in rows} == {("1", "4"), ("2", "2")}
    assert float(rows[0]["task_chance"]) == pytest.approx(1 / 32)
    for k, n in (("2", "1"), ("3", "2")):  # each run trained the copy task with its slots and items
        config = (out / f"K{k}-items{n}-seed3" / "config.yaml").read_text()
        assert f"slots: {k}" in config and f"items: {n}" in config and "task: copy" in config
    assert (results / "capacity_curve.png").stat().st_size > 0
    assert "8 runs, trained 8 in" in capsys.readouterr().out
    assert capacity.main(argv) == 0  # finished runs are picked up
    printed = capsys.readouterr().out
    assert printed.count("(already done)") == 8 and "8 runs, every one was already finished" in printed
    assert capacity.main([*argv, "--node", "block1"]) == 2
    assert "node 'block1' is a block, not a workspace" in capsys.readouterr().err


def test_the_capacity_curve_refuses_runs_of_other_settings_in_one_line(write_arch, tmp_path, capsys):
    arch, out = write_arch(WORKSPACE, "ws.yaml"), tmp_path / "out"
    argv = ["--arch", str(arch), "--slots", "2", "--items", "1", "--delay", "4", "--seq-len", "12",
            "--steps", "2", "--batch-size", "2", "--answers", "2", "--seeds", "0", "--jobs", "1",
            "--out", str(out), "--results", str(tmp_path / "results")]
    capacity = _capacity()
    assert capacity.main(argv) == 0
    capsys.readouterr()
    assert capacity.main([*argv, "--delay", "5"]) == 2  # the same run folder, another task setting
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "holds a run of a different configuration" in err
    assert (out / "K2-items1-seed0" / "summary.json").exists()  # the finished run is kept


def _losses(run_dir: Path) -> list[float]:
    return [r["loss"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if "loss" in r]


def test_a_suite_seed_is_the_seed_of_cogsim_run(write_arch, tmp_path):
    """A suite's run of seed k trains exactly what ``cogsim run --seed k`` trains: the synthetic
    task's data follows the seed, not only the model's initialisation (the task is built when the
    spec is read, from the file's seed; a suite once reused that seed's data for every seed)."""
    from cogsim.ablation.runner import run_suite
    from cogsim.ablation.variants import Variant, with_seed
    from cogsim.graph.spec import read_spec
    arch = write_arch(WINDOWED, "w.yaml")
    sets = ["data.task=facts", "data.n_facts=64", "train.steps=3"]
    run_suite([Variant("w", "", read_spec(arch, sets))], [0, 2], tmp_path / "suite", device="cpu")
    assert main(["run", str(arch), *(f"--set={s}" for s in sets), "--seed", "2", "--out", str(tmp_path / "run"),
                 "--quiet", "--no-viz", "--threads", "1"]) == 0
    assert _losses(tmp_path / "suite" / "w-seed2") == _losses(tmp_path / "run")
    assert _losses(tmp_path / "suite" / "w-seed0") != _losses(tmp_path / "suite" / "w-seed2")
    a, b = (with_seed(read_spec(arch, sets), k).task for k in (0, 2))
    assert (a.objects != b.objects).any()  # each seed its own world of facts
    assert not (a.batch(0, 0, 2)[0] == b.batch(0, 0, 2)[0]).all()  # and its own batches
