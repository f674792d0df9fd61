"""Probes on a real (tiny) model, the probe-task training mix and probes in the run summary."""
from __future__ import annotations

import json

import numpy as np
import torch

from cogsim.data import tasks
from cogsim.data.batches import TaskMixSampler, task_stream
from cogsim.data.corpus import load_corpus
from cogsim.data.tokenizer import EOT, prepare
from cogsim.evaluate.probes import METRICS, run_probes
from cogsim.graph.build import build_plan
from cogsim.graph.spec import read_spec
from cogsim.model import CognitiveModel
from cogsim.train.trainer import Trainer

ARCH = """\
name: tinyprobe
model: {d_model: 32, n_heads: 2, seq_len: 64, vocab_size: 300}
train: {steps: 4, batch_size: 4, lr: 0.003, warmup: 1, eval_every: 4, eval_batches: 1, checkpoint_every: 4, log_every: 1}
data: {task_mix: 0.5, probe_count: 4}
nodes:
  embed: {type: embedding}
  block1: {type: block}
  engram: {type: engram, max_ngram_size: 2, n_head_per_ngram: 2, n_embed_per_ngram: 16}
  head: {type: lm_head}
stack: [embed, block1, engram, head]
edges: [tokens -> engram.ids]
"""


def _model(write_arch, tiny_corpus):
    spec = read_spec(write_arch(ARCH), [f"data.path={tiny_corpus}"])
    data = prepare(load_corpus(tiny_corpus), 300)
    torch.manual_seed(0)
    model = CognitiveModel(build_plan(spec, vocab_size=data.vocab_size))
    model.attach_tokenizer(data.tokenizer)
    return spec, data, model


def test_run_probes_reports_every_metric_and_leaves_the_model_unchanged(write_arch, tiny_corpus):
    spec, data, model = _model(write_arch, tiny_corpus)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    first = run_probes(model, data.tokenizer, 64, count=6)
    second = run_probes(model, data.tokenizer, 64, count=6)
    assert list(first) == list(METRICS)
    assert {m: r.value for m, r in first.items()} == {m: r.value for m, r in second.items()}
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    for metric in ("recall", "vartrack"):
        r = first[metric]
        assert r.kind == "accuracy" and 0.0 <= r.value <= 1.0 and r.n == 6 and r.level is not None
    assert first["anomaly_htm"].value is None and "no htm node" in first["anomaly_htm"].note
    lm = first["anomaly_lm"]
    assert lm.level is None or (0.0 <= lm.value <= 1.0 and lm.n > 0)
    assert run_probes(model, data.tokenizer, 4, count=2)["needle"].value is None  # nothing fits 4 tokens


def test_task_mix_sampler_is_seeded_and_starts_task_windows_at_instances(tiny_corpus):
    data = prepare(load_corpus(tiny_corpus), 300)
    tok = data.tokenizer
    docs = [d.text for d in tasks.instances("vartrack", (1, 0), 50, seed=0)]
    tokens, starts = task_stream(tok, docs, tok.token_to_id(EOT))
    assert tok.decode(tokens[starts[1]: starts[2] - 1].tolist()) == docs[1]
    make = lambda: TaskMixSampler(data.train, 16, 8, 3, tokens, starts, 0.5)
    a, b = make(), make()
    batches = [a.next() for _ in range(4)]
    assert all(torch.equal(x, y) for (x, _), (y, _) in zip(batches, [b.next() for _ in range(4)]))
    starts_set = {tuple(tokens[s : s + 16]) for s in starts.tolist()}
    task_rows = sum(tuple(row.tolist()) in starts_set for x, _ in batches for row in x)
    assert 6 <= task_rows <= 26  # about half of 32 rows
    x, y = batches[0]
    assert torch.equal(x[:, 1:], y[:, :-1])


def test_training_with_task_mix_puts_probe_results_in_the_summary(write_arch, tiny_corpus, tmp_path):
    spec = read_spec(write_arch(ARCH), [f"data.path={tiny_corpus}"])
    summary = Trainer(spec, tmp_path / "run", device="cpu").train()
    assert set(summary["probes"]) == set(METRICS)
    saved = json.loads((tmp_path / "run" / "probes.json").read_text())
    assert saved["recall"]["n"] == 4 and saved["recall"]["value"] == summary["probes"]["recall"]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["probes"] == summary["probes"]
    assert np.isfinite(summary["val_bpb"])


def test_htm_anomaly_probe_scores_the_injected_words(write_arch, tiny_corpus):
    """The HTM node learns each stream's pattern online as it reads, so the injected words stand out;
    with learning off it has no synapses, predicts nothing and cannot tell them apart (AUC 1/2)."""
    data = prepare(load_corpus(tiny_corpus), 1000)
    aucs = {}
    for learn in ("train", "never"):
        arch = ARCH.replace("seq_len: 64", "seq_len: 128").replace("vocab_size: 300", "vocab_size: 1000").replace(
            "  head: {type: lm_head}\n", f"  htm: {{type: htm, streams: 4, learn: {learn}}}\n  head: {{type: lm_head}}\n"
        ).replace("edges: [tokens -> engram.ids]", "edges: [tokens -> engram.ids, htm.out -> head.x]")
        spec = read_spec(write_arch(arch, f"{learn}.yaml"), [f"data.path={tiny_corpus}"])
        torch.manual_seed(0)
        model = CognitiveModel(build_plan(spec, vocab_size=data.vocab_size))
        model.attach_tokenizer(data.tokenizer)
        model.eval()
        before = {k: v.clone() for k, v in model.state_dict().items()}
        result = run_probes(model, data.tokenizer, 128, count=8)["anomaly_htm"]
        assert result.note == "signal htm.anomaly" and result.n > 100
        assert not model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
        aucs[learn] = result.value
    assert aucs["train"] > 0.7 and aucs["never"] == 0.5
