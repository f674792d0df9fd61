"""Pieces of the figures and report: token labels, wrapping, cycle keys, probe texts, the layout of
a text by tokens, probe-task tables, figures drawn from hand-made traces (HTM, workspace cycles)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from cogsim.viz.common import escape_token, last_cycle, rows_of, token_strings
from cogsim.viz.engram import _layout, plot_gate_text
from cogsim.viz.htm import count_series, plot_htm
from cogsim.viz.probes import MAX_TOKENS, PATTERN, default_probes, snippet, validation_text
from cogsim.viz.report import task_rows
from cogsim.viz.spikes import shown_neurons
from cogsim.viz.workspace import plot_workspace


@pytest.fixture(scope="module")
def tokenizer():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([PATTERN * 20, "def f(x):\n    return x + 1\n" * 20, "héllo wörld ✓ " * 10], trainer)
    return tok


def test_escape_token_makes_whitespace_visible():
    assert escape_token("\n    ") == "↵····"
    assert escape_token("\tx") == "⇥x"
    assert escape_token(" return") == "·return"
    assert escape_token("abcdefghijklmnop", limit=6) == "abcde…"


def test_token_strings_show_raw_pieces_of_split_characters(tokenizer):
    ids = tokenizer.encode("wörld ✓").ids
    strings = token_strings(tokenizer, ids)
    assert len(strings) == len(ids)
    assert all("\ufffd" not in s for s in strings)
    # pieces that are whole characters decode to themselves and join back to the text
    whole = [tokenizer.decode([i]) for i in ids]
    assert [s for s, w in zip(strings, whole) if "\ufffd" not in w] == [w for w in whole if "\ufffd" not in w]


@pytest.mark.parametrize("length,per_row,expected", [
    (10, 64, [(0, 10)]), (64, 64, [(0, 64)]), (65, 64, [(0, 33), (33, 65)]), (128, 64, [(0, 64), (64, 128)]),
    (130, 64, [(0, 44), (44, 88), (88, 130)]), (0, 64, [])])
def test_rows_cover_every_position_in_equal_rows(length, per_row, expected):
    assert rows_of(length, per_row) == expected


def test_last_cycle_picks_the_highest_cycle():
    traces = {"bids": 0, "bids@cycle1": 1, "bids@cycle2": 2, "winners": 0, "other@cycle5": 5}
    assert last_cycle(traces, "bids") == ("bids@cycle2", 2)
    assert last_cycle(traces, "winners") == ("winners", 0)
    assert last_cycle(traces, "slot_owner") == (None, 0)


def test_layout_follows_the_text():
    tokens = ["def", " f", "():", "\n    ", "return", "\n"]
    pieces = _layout(tokens)
    assert pieces == [(0, 0, "def", 0), (0, 3, " f", 1), (0, 5, "():", 2), (0, 8, "↵", 3), (1, 0, "    ", 3),
                      (1, 4, "return", 4), (1, 10, "↵", 5)]


def test_snippet_starts_at_a_definition():
    assert snippet("# header\nimport os\n\ndef main():\n    pass\n") == "def main():\n    pass\n"
    assert snippet("x = 1\n") == "x = 1\n"


def test_probes_are_deterministic_and_fit_the_model(tokenizer, tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    for i in range(30):
        (folder / f"m{i:02d}.py").write_text(f"# module {i}\n\ndef f{i}(x):\n    return x * {i}\n")
    a = default_probes(tokenizer, 24, str(folder), 5.0)
    b = default_probes(tokenizer, 24, str(folder), 5.0)
    assert [(p.name, p.ids) for p in a] == [(p.name, p.ids) for p in b]
    assert [p.name for p in a] == ["validation", "pattern"]
    assert all(0 < len(p.ids) <= 24 for p in a)
    assert a[0].text.startswith("def f")  # a validation file of that folder, from its definition
    assert a[1].text.startswith(PATTERN)
    own = default_probes(tokenizer, 24, str(folder), 5.0, text="x = 1\n")
    assert own[0].name == "text" and own[0].text == "x = 1\n"
    long = default_probes(tokenizer, 100_000, str(folder), 5.0, text="x = 1\n" * 1000)
    assert [len(p.ids) for p in long] == [MAX_TOKENS, MAX_TOKENS]
    text, where = validation_text(str(tmp_path / "gone"), 5.0)
    assert "built-in" in where and "def " in text


def test_probe_task_rows_from_the_summary_or_probes_json():
    assert task_rows({}) == []
    summary = {"probes": {"recall": 0.5, "anomaly_htm": None}}
    assert task_rows(summary) == [("recall", "0.500", "", "", "", ""), ("anomaly_htm", "n/a", "", "", "", "")]
    details = {"needle": {"metric": "needle", "value": 0.25, "kind": "accuracy", "n": 40, "chance": 0.1, "note": ""},
               "anomaly_htm": {"value": None, "kind": "auc", "n": 0, "chance": None, "note": "no htm node"}}
    assert task_rows(summary, details) == [("needle", "0.250", "accuracy", "40", "0.100", ""),
                                           ("anomaly_htm", "n/a", "auc", "0", "n/a", "no htm node")]


def test_shown_neurons_spread_over_the_spiking_ones():
    counts = np.array([0, 5, 0, 9, 1, 5, 2])
    assert shown_neurons(counts, 10).tolist() == [3, 1, 5, 6, 4]  # every spiking neuron, most active first
    assert shown_neurons(counts, 3).tolist() == [3, 5, 4]  # first, middle and last of that ranking
    assert shown_neurons(np.zeros(4, dtype=int), 2).tolist() == [0, 3]  # all silent: silent ones


def _colours(path):
    return len(Image.open(path).convert("RGB").getcolors(1 << 20))


def test_htm_figure_from_traces(tmp_path):
    t = 30
    anomaly = torch.linspace(1, 0, t)[None]
    traces = {"anomaly": anomaly, "active_columns": torch.full((1, t), 40.0),
              "predicted_active_columns": (40 * (1 - anomaly)).round(), "anomaly@cycle1": anomaly,
              "sdr": torch.zeros(1, t, 64)}
    assert list(count_series(traces)) == ["active_columns", "predicted_active_columns"]
    path = plot_htm(traces, [f"t{i}" for i in range(t)], tmp_path / "htm.png", "HTM")
    assert _colours(path) > 20
    with pytest.raises(ValueError, match="anomaly"):
        plot_htm({"active_columns": anomaly}, ["x"] * t, tmp_path / "no.png", "HTM")


def test_workspace_figure_draws_the_last_cycle(tmp_path):
    t, m, k = 20, 3, 4
    g = torch.Generator().manual_seed(0)
    bids = torch.softmax(torch.randn(1, t, m, generator=g), -1)
    winners = torch.zeros(1, t, m, dtype=torch.bool).scatter_(-1, bids.argmax(-1, keepdim=True), True)
    owner = torch.randint(-1, m, (1, t, k), generator=g)
    traces = {"bids": bids, "winners": winners, "slot_owner": owner,
              "bids@cycle1": bids.flip(-1), "winners@cycle1": winners.flip(-1), "slot_owner@cycle1": owner}
    path = plot_workspace(traces, [f"w{i}" for i in range(t)], ["a", "b", "c"], tmp_path / "ws.png", "ws", cycles=2)
    assert _colours(path) > 20


def test_gate_text_handles_long_texts(tmp_path):
    tokens = ["line", " of", " code", "\n"]
    long = plot_gate_text(np.linspace(0, 1, 240), tokens * 60, tmp_path / "long.png", "gate", max_lines=20)
    short = plot_gate_text(np.linspace(0, 1, 80), tokens * 20, tmp_path / "short.png", "gate", max_lines=20)
    assert Image.open(long).size == Image.open(short).size  # cut at max_lines
