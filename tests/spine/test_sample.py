"""``cogsim sample``: text from a trained run, drawn token by token from the model's next-token
distribution; greedy decoding follows the model's argmax, a seed fixes the draws."""
from __future__ import annotations

import shutil

import pytest
import torch

from cogsim.cli import main
from cogsim.data.tokenizer import EOT
from cogsim.runs import load_run
from cogsim.sampling import generate

TINY = ["--set", "model.d_model=32", "--set", "model.n_heads=2", "--set", "model.seq_len=32",
        "--set", "model.vocab_size=300", "--set", "data.probe_count=0"]


@pytest.fixture(scope="module")
def run_dir(tiny_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("sample") / "run"
    assert main(["run", "transformer", "--data", str(tiny_corpus), "--steps", "12", "--batch-size", "4",
                 "--out", str(out), "--quiet", "--no-viz", *TINY]) == 0
    return out


def test_greedy_tokens_are_the_models_argmax(run_dir):
    loaded = load_run(run_dir)
    prompt = loaded.tokenizer.encode("def main(", add_special_tokens=False).ids
    eot = loaded.tokenizer.token_to_id(EOT)
    out = generate(loaded.model, prompt, 12, temperature=0, stop=eot)
    seq = prompt + out
    assert len(seq) <= 32  # one window: the full-sequence forward sees what each step saw
    with torch.no_grad():
        best = loaded.model(torch.tensor([seq]))[0].argmax(-1).tolist()
    assert out == best[len(prompt) - 1:len(seq) - 1]
    assert len(out) == 12 or best[len(seq) - 1] == eot  # stopped early only at the end-of-text token
    assert generate(loaded.model, prompt, 12, temperature=1.0, top_k=1, stop=eot) == out  # top-1 is greedy


def test_sampling_draws_from_the_softmax(run_dir):
    loaded = load_run(run_dir)
    prompt = loaded.tokenizer.encode("import ", add_special_tokens=False).ids
    with torch.no_grad():
        probs = torch.softmax(loaded.model(torch.tensor([prompt]))[0, -1] / 2.0, -1)
    gen = torch.Generator().manual_seed(0)
    draws = torch.tensor([generate(loaded.model, prompt, 1, temperature=2.0, generator=gen)[0] for _ in range(400)])
    top = int(probs.argmax())
    share = float((draws == top).float().mean())
    sd = (float(probs[top]) * (1 - float(probs[top])) / 400) ** 0.5
    assert abs(share - float(probs[top])) < 4 * sd + 1e-3
    top3 = torch.topk(probs, 3).indices
    gen = torch.Generator().manual_seed(1)
    kept = [generate(loaded.model, prompt, 1, temperature=2.0, top_k=3, generator=gen)[0] for _ in range(50)]
    assert set(kept) <= set(top3.tolist())


def test_cli_prints_the_prompt_and_its_continuation(run_dir, capsys):
    args = ["sample", str(run_dir), "--prompt", "class ", "--tokens", "10", "--temperature", "1.5"]
    assert main([*args, "--seed", "3"]) == 0
    first = capsys.readouterr().out
    assert main([*args, "--seed", "3"]) == 0
    assert capsys.readouterr().out == first and first.startswith("class ") and len(first) > len("class \n")
    assert main([*args, "--seed", "4"]) == 0
    assert capsys.readouterr().out != first
    assert main(["sample", str(run_dir), "--tokens", "5"]) == 0  # no prompt: a new document


@pytest.mark.parametrize("args, message", [
    (["missing"], "missing: no such run folder"),
    (["."], ".: not a run folder (no config.yaml)"),
    ([None, "--tokens", "0"], "--tokens 0: must be at least 1"),
    ([None, "--temperature", "-1"], "--temperature -1.0: must be ≥ 0"),
])
def test_errors_are_one_line(args, message, run_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["sample", *(str(run_dir) if a is None else a for a in args)]
    assert main(argv) == 2
    assert capsys.readouterr().err == f"cogsim sample: error: {message}\n"


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "tokenizer.json").unlink(), "tokenizer.json: missing (the run's tokenizer)"),
    (lambda d: (d / "tokenizer.json").write_bytes(b"\x00\x01\x02"), "tokenizer.json: unreadable tokenizer ("),
    (lambda d: (d / "checkpoint" / "model.safetensors").write_bytes(b"garbage"), "checkpoint: unreadable checkpoint ("),
])
def test_a_damaged_run_folder_is_one_line(damage, message, run_dir, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    damage(copy)
    assert main(["sample", str(copy), "--tokens", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{copy}/{message}" in err
