"""``cogsim ablate`` on a tiny config: variants, tables with CI columns, figure, resume, errors."""
from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import matplotlib.image as mpimg
import pytest
import torch

from cogsim import native
from cogsim.ablation.runner import SuiteProgress, run_dir_of, run_suite
from cogsim.ablation.suite import load_suite
from cogsim.ablation.tables import SUMMARY_COLUMNS
from cogsim.ablation.variants import make_variants, with_seed
from cogsim.cli import main
from cogsim.errors import CogsimError
from cogsim.graph.spec import read_spec
from cogsim.train.trainer import Trainer

ARCH = """\
name: tinyabl
model: {d_model: 32, n_heads: 2, seq_len: 48, vocab_size: 300}
train: {steps: 2, batch_size: 2, lr: 0.003, warmup: 1, eval_every: 2, eval_batches: 1, checkpoint_every: 2, log_every: 1}
data: {task_mix: 0.25, probe_count: 2}
nodes:
  embed: {type: embedding}
  block1: {type: block}
  engram: {type: engram, max_ngram_size: 3, n_head_per_ngram: 2, n_embed_per_ngram: 16}
  snn: {type: snn, mode: sequence, neurons: 16}
  head: {type: lm_head}
stack: [embed, block1, engram, snn, head]
edges: [tokens -> engram.ids]
"""
ENGRAM_ONLY = ARCH.replace("  snn: {type: snn, mode: sequence, neurons: 16}\n", "").replace("snn, head]", "head]")


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_variants_of_an_architecture(write_arch):
    variants = make_variants(write_arch(ARCH))
    assert [v.name for v in variants] == ["full", "no_engram", "no_snn", "plain", "engram_min"]
    by = {v.name: v.spec for v in variants}
    assert set(by["no_engram"].nodes) == {"embed", "block1", "snn", "head"}
    assert set(by["plain"].nodes) == {"embed", "block1", "head"}
    assert by["engram_min"].nodes["engram"].params["engram_vocab_size"] == [2, 2]  # orders 2 and 3
    only_engram = make_variants(write_arch(ENGRAM_ONLY, "e.yaml"))
    assert [v.name for v in only_engram] == ["full", "plain", "engram_min"]  # no_engram would be plain
    chosen = make_variants(write_arch(ARCH), names=["plain", "full", "plain"])
    assert [v.name for v in chosen] == ["full", "plain"]


def test_ablate_two_seeds_tables_figure_and_resume(write_arch, tiny_corpus, tmp_path, capsys):
    arch = write_arch(ENGRAM_ONLY)
    out = tmp_path / "abl"
    args = ["ablate", str(arch), "--seeds", "2", "--set", f"data.path={tiny_corpus}", "--out", str(out), "--quiet"]
    # an interrupted run of the full architecture, seed 1: the suite must continue it, not restart it
    spec = with_seed(read_spec(arch, [f"data.path={tiny_corpus}"]), 1)
    Trainer(spec, run_dir_of(out, "full", 1), device="cpu").train(stop_after=1)

    assert main(args) == 0
    runs = _rows(out / "runs.csv")
    assert [(r["variant"], r["seed"]) for r in runs] == [(v, s) for v in ("full", "plain", "engram_min") for s in "01"]
    assert all(r["steps"] == "2" and float(r["val_bpb"]) > 0 and r["recall"] != "" for r in runs)
    metrics = (out / "full-seed1" / "metrics.jsonl").read_text()
    assert metrics.count('"step": 1,') >= 1 and metrics.count('"val_loss"') == 2  # step 0 and 2: resumed

    summary = _rows(out / "ablation.csv")
    assert list(summary[0]) == SUMMARY_COLUMNS
    bpb = {r["variant"]: r for r in summary if r["metric"] == "val_bpb"}
    assert list(bpb) == ["full", "plain", "engram_min"]
    assert bpb["full"]["diff"] == "" and bpb["full"]["n"] == "2"
    for name in ("plain", "engram_min"):
        r = bpb[name]
        by_seed = {x["seed"]: float(x["val_bpb"]) for x in runs if x["variant"] == name}
        full = {x["seed"]: float(x["val_bpb"]) for x in runs if x["variant"] == "full"}
        assert float(r["diff"]) == pytest.approx(sum(by_seed[s] - full[s] for s in "01") / 2, abs=1e-5)
        assert float(r["ci_low"]) <= float(r["diff"]) <= float(r["ci_high"]) and r["diff_n"] == "2"
    assert "anomaly_htm" not in {r["metric"] for r in summary}  # n/a everywhere: left out

    md = (out / "ablation.md").read_text()
    assert "| full |" in md and "| engram_min |" in md and "95% CI" in md and "Δ validation bits/byte" in md
    image = mpimg.imread(out / "ablation.png")
    assert image.shape[0] > 300 and image.shape[1] > 600

    before = (out / "runs.csv").read_text()
    capsys.readouterr()
    assert main(args) == 0  # everything finished: nothing is trained again
    assert (out / "runs.csv").read_text() == before


def test_ablate_errors_are_one_line(write_arch, tmp_path, capsys):
    arch = write_arch(ARCH)
    assert main(["ablate", str(arch), "--variants", "no_htm", "--list"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown variant 'no_htm'" in err and "no_snn" in err
    suite = write_arch(f"architecture: {arch}\nseeds: 2\nstepz: 3\n", "suite.yaml")
    assert main(["ablate", "--suite", str(suite), "--list"]) == 2
    err = capsys.readouterr().err
    assert f"{suite}:3:" in err and "unknown field 'stepz'" in err
    suite = write_arch(f"architecture: {arch}\nseeds: [1, 1]\n", "suite2.yaml")
    assert main(["ablate", "--suite", str(suite), "--list"]) == 2
    assert "distinct integers" in capsys.readouterr().err
    assert main(["ablate", "--seeds", "0,x", str(arch), "--list"]) == 2
    assert "--seeds 0,x" in capsys.readouterr().err


def test_suite_file_sets_the_budget_of_every_variant(write_arch, capsys):
    arch = write_arch(ARCH)
    suite = write_arch(f"architecture: {arch}\nseeds: [3, 5]\nvariants: [plain]\nsteps: 7\n"
                       "set:\n  train.batch_size: 3\n  data.task_mix: 0.1\n", "suite.yaml")
    s = load_suite(suite)
    assert s.seeds == [3, 5] and s.variants == ["plain"]
    variants = make_variants(s.architecture, s.overrides, s.variants)
    assert [v.name for v in variants] == ["full", "plain"]
    for v in variants:
        assert (v.spec.train.steps, v.spec.train.batch_size, v.spec.data.task_mix) == (7, 3, 0.1)
    assert main(["ablate", "--suite", str(suite), "--list"]) == 0
    assert "2 variants × 2 seeds = 4 runs of 7 steps" in capsys.readouterr().out
    assert math.isclose(with_seed(variants[0].spec, 5).train.seed, 5)


def test_parallel_jobs_give_the_numbers_of_single_thread_sequential_runs(write_arch, tiny_corpus, tmp_path):
    variants = make_variants(write_arch(ENGRAM_ONLY), [f"data.path={tiny_corpus}"], ["plain"])
    wait_policy = os.environ.get("OMP_WAIT_POLICY")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what each of 2 workers uses on a 2-core machine
    try:
        sequential = run_suite(variants, [0], tmp_path / "seq", device="cpu")
    finally:
        torch.set_num_threads(threads)
    seen = []
    progress = SuiteProgress(on_run_start=lambda key, start, steps: seen.append((key, start, steps)))
    parallel = run_suite(variants, [0], tmp_path / "par", device="cpu", progress=progress,
                            jobs=2)
    assert sorted(seen) == [("full seed 0", 0, 2), ("plain seed 0", 0, 2)]
    share = max(1, native.usable_cpus() // 2)  # each worker's torch and kernel (HTM, SNN, Engram) threads
    for row in parallel:
        summary = json.loads((Path(row["run_dir"]) / "summary.json").read_text())
        assert summary["threads"] == {"torch": share, "native": share, "omp_wait_policy": "PASSIVE"}
    assert os.environ.get("OMP_WAIT_POLICY") == wait_policy  # the parent's environment is back
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("run_dir", "seconds")} for r in rows]
    if (os.cpu_count() or 1) // 2 == 1:
        assert strip(parallel) == strip(sequential)
    else:  # more cores: workers use more threads, equal up to float reduction order
        for a, b in zip(parallel, sequential):
            assert a["val_bpb"] == pytest.approx(b["val_bpb"], rel=1e-4)


def test_a_variant_that_breaks_the_graph_is_an_error_only_when_chosen(write_arch):
    arch = write_arch("""\
name: htmfeed
model: {d_model: 32, n_heads: 2, seq_len: 16, vocab_size: 300}
nodes:
  embed: {type: embedding}
  htm: {type: htm, columns: 64, active_columns: 4}
  block1: {type: block}
  head: {type: lm_head}
edges: [tokens -> embed.ids, tokens -> htm.ids, htm.out -> block1.x, block1 -> head.x, embed -> head.x]
""")
    assert [v.name for v in make_variants(arch, names=["full"])] == ["full"]
    with pytest.raises(CogsimError, match=r"variant plain: .*block1.*not connected.*leave it out with --variants"):
        make_variants(arch)


def test_ablate_a_synthetic_task_compares_answer_accuracy(write_arch, tmp_path, capsys):
    arch = write_arch(ENGRAM_ONLY)
    out = tmp_path / "abl"
    args = ["ablate", str(arch), "--seeds", "2", "--variants", "plain", "--set", "data.task=count",
            "--set", "data.span=12", "--out", str(out), "--quiet"]
    assert main(args) == 0
    runs = _rows(out / "runs.csv")
    assert all(0 <= float(r["task_accuracy"]) <= 1 and r["val_bpb"] == "" for r in runs)
    summary = {(r["variant"], r["metric"]): r for r in _rows(out / "ablation.csv")}
    assert {m for _, m in summary} == {"task_accuracy"}
    by = {(r["variant"], r["seed"]): float(r["task_accuracy"]) for r in runs}
    diff = sum(by[("plain", s)] - by[("full", s)] for s in "01") / 2
    assert float(summary[("plain", "task_accuracy")]["diff"]) == pytest.approx(diff, abs=1e-5)
    before = (out / "runs.csv").read_text()
    assert main(args) == 0  # finished task runs (no probes) are not trained again
    assert (out / "runs.csv").read_text() == before
