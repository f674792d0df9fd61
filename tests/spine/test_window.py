"""Sliding-window causal attention: the reach of a stack of windowed layers, the model default, the
node override, and identity with full attention when the window covers the sequence."""
from __future__ import annotations

import pytest
import torch

import cogsim
from cogsim.backbone import window_mask
from cogsim.cli import main

VOCAB = 50


def stack(write_arch, layers: int, model_window=None, node_windows=None) -> torch.nn.Module:
    windows = [f", window: {w}" if w is not None else "" for w in (node_windows or [None] * layers)]
    blocks = "".join(f"  b{i}: {{type: block{windows[i]}}}\n" for i in range(layers))
    window = f", window: {model_window}" if model_window is not None else ""
    text = (f"model: {{d_model: 32, n_heads: 2, seq_len: 48, vocab_size: 300{window}}}\n"
            f"nodes:\n  embed: {{type: embedding}}\n{blocks}  head: {{type: lm_head}}\n"
            f"stack: [embed, {', '.join(f'b{i}' for i in range(layers))}, head]\n")
    torch.manual_seed(0)
    return cogsim.build_model(write_arch(text), vocab_size=VOCAB).eval()


def moved(model, ids: torch.Tensor, position: int, t: int) -> bool:
    """Whether the output at ``t`` changes when the token at ``position`` changes."""
    changed = ids.clone()
    changed[:, position] = (changed[:, position] + 1) % VOCAB
    with torch.no_grad():
        return not torch.equal(model(ids)[:, t], model(changed)[:, t])


def test_window_mask_is_the_last_w_positions():
    m = window_mask(6, 3, torch.device("cpu"))
    for i in range(6):
        assert [j for j in range(6) if m[i, j]] == list(range(max(0, i - 2), i + 1))


@pytest.mark.parametrize("layers,window", [(1, 4), (2, 3), (3, 5)])
def test_a_stack_of_windowed_layers_reaches_exactly_l_times_w_minus_1_back(write_arch, layers, window):
    model = stack(write_arch, layers, model_window=window)
    reach = layers * (window - 1)
    ids = torch.randint(0, VOCAB, (2, 40))
    t = 39
    assert not moved(model, ids, t - reach - 1, t)  # just outside: the output does not move at all
    assert not moved(model, ids, 0, t)
    assert moved(model, ids, t - reach, t)  # the farthest token inside the reach
    assert moved(model, ids, t, t)
    assert not moved(model, ids, t, t - 1)  # still causal


def test_the_window_covering_the_sequence_is_full_attention(write_arch):
    ids = torch.randint(0, VOCAB, (2, 40))
    with torch.no_grad():
        full = stack(write_arch, 2)(ids)
        for w in (40, 48, 1000):
            assert torch.equal(stack(write_arch, 2, model_window=w)(ids), full)
        assert torch.equal(stack(write_arch, 2, model_window=0)(ids), full)
        assert not torch.equal(stack(write_arch, 2, model_window=39)(ids), full)


def test_node_window_overrides_the_model_default(write_arch):
    # block 0 keeps full attention (window 0) under a model default of 3: the reach is unbounded
    model = stack(write_arch, 2, model_window=3, node_windows=[0, None])
    ids = torch.randint(0, VOCAB, (1, 40))
    assert moved(model, ids, 0, 39)
    # both blocks at 5 although the model says 3
    model = stack(write_arch, 2, model_window=3, node_windows=[5, 5])
    assert moved(model, ids, 39 - 8, 39) and not moved(model, ids, 39 - 9, 39)


def test_set_model_window_on_a_shipped_architecture():
    model = cogsim.build_model("architectures/transformer.yaml", vocab_size=VOCAB,
                               overrides=["model.d_model=32", "model.n_heads=2", "model.window=3"]).eval()
    ids = torch.randint(0, VOCAB, (1, 20))
    assert moved(model, ids, 19 - 8, 19) and not moved(model, ids, 19 - 9, 19)  # 4 blocks · (3 − 1)


def test_a_negative_window_is_a_clear_error(write_arch, capsys):
    path = write_arch("model: {d_model: 32, n_heads: 2}\nnodes:\n  embed: {type: embedding}\n"
                      "  b: {type: block, window: -2}\n  head: {type: lm_head}\nstack: [embed, b, head]\n")
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "arch.yaml:4: node 'b'" in err and "parameter 'window': must be ≥ 0" in err
    assert main(["check", str(path), "--set", "nodes.b.window=2", "--set", "model.window=-1"]) == 2
    assert "parameter 'window': must be ≥ 0" in capsys.readouterr().err
