"""Data-parallel training with torchrun (2 CPU ranks, gloo): the same numbers as one process, a
checkpoint that reshards 2 → 1 → 2, a one-line error for a batch the ranks cannot split."""
from __future__ import annotations

import json

import pytest

from cogsim.errors import CogsimError
from cogsim.graph.spec import read_spec
import torch

from cogsim.train.distributed import World, backend_for, check_batch, rank_device
from cogsim.train.trainer import Trainer
from launch import torchrun

# transformer + Engram (sharded across the ranks) + HTM (streams split across the ranks)
ARCH = """\
name: tinydist
model: {d_model: 32, n_heads: 2, seq_len: 16, vocab_size: 300}
train: {steps: 6, batch_size: 4, lr: 0.003, warmup: 2, eval_every: 3, eval_batches: 2, checkpoint_every: 3, log_every: 1}
data: {probe_count: 0}
nodes:
  embed: {type: embedding}
  block1: {type: block}
  engram: {type: engram, max_ngram_size: 3, n_head_per_ngram: 2, n_embed_per_ngram: 16, engram_vocab_size: [997, 1009],
           placement: sharded}
  htm: {type: htm, columns: 64, active_columns: 4, cells_per_column: 4, activation_threshold: 2, min_threshold: 1,
        streams: 4}
  block2: {type: block}
  head: {type: lm_head}
stack: [embed, block1, engram, block2, head]
edges: [htm.out -> block2.x]
"""


# a synthetic task whose answer count differs between the halves of a batch (motifs: 5 or 6 a row)
TASK_ARCH = """\
name: tinytask
model: {d_model: 32, n_heads: 2, seq_len: 48}
train: {steps: 4, batch_size: 4, lr: 0.01, warmup: 1, eval_every: 2, eval_batches: 2, log_every: 1}
data: {task: motifs, shared: 4, switch: 1}
nodes:
  embed: {type: embedding}
  block1: {type: block}
  htm: {type: htm, columns: 64, active_columns: 4, cells_per_column: 4, activation_threshold: 2, min_threshold: 1,
        streams: 4}
  head: {type: lm_head}
stack: [embed, block1, head]
edges: [htm.out -> head.x]
"""


def rows(run_dir, keys=("loss", "val_loss")) -> dict[tuple[int, str], float]:
    out = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        for key in keys:
            if key in r:
                out[(r["step"], key)] = r[key]
    return out


def assert_close(got: dict, want: dict, rel: float = 1e-4) -> None:
    assert got.keys() == want.keys()
    for k in want:
        assert abs(got[k] - want[k]) <= rel * abs(want[k]), (k, got[k], want[k])


def run_cli(arch, corpus, out, *extra, ranks=2):
    proc = torchrun("-m", "cogsim", "run", str(arch), "--data", str(corpus), "--out", str(out), "--quiet",
                    "--no-viz", *extra, ranks=ranks)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_two_ranks_train_like_one_process_and_checkpoints_reshard_2_1_2(write_arch, tiny_corpus, tmp_path):
    arch = write_arch(ARCH)
    spec = read_spec(arch, [f"data.path={tiny_corpus}"])
    Trainer(spec, tmp_path / "one", device="cpu").train()
    reference = rows(tmp_path / "one")
    assert len([k for k in reference if k[1] == "val_loss"]) == 3

    # 2 ranks → 1 process → 2 ranks continues the run: the next steps' losses are the same
    split = tmp_path / "split"
    run_cli(arch, tiny_corpus, split, "--stop-after", "2")
    Trainer(read_spec(arch, [f"data.path={tiny_corpus}"]), split, device="cpu", resume=True).train(stop_after=2)
    run_cli(arch, tiny_corpus, split, "--resume")
    assert_close(rows(split), reference)  # validation at step 0 and 6 ran on 2 ranks, step 3 on one
    index = json.loads((split / "checkpoint" / "shards.json").read_text())["tensors"]["engram.weight"]
    assert [p["file"] for p in index["parts"]] == ["shard-00000-of-00002.safetensors", "shard-00001-of-00002.safetensors"]
    assert index["parts"][0]["stop"] == index["parts"][1]["start"] and index["parts"][1]["stop"] == index["rows"]


def test_task_answers_counted_over_the_global_batch_like_one_process(write_arch, tmp_path):
    """Answers-only loss under data parallel: every rank divides its summed answer loss by the
    global answer count, so losses and accuracies equal one process's although the ranks' halves
    hold different numbers of answers."""
    arch = write_arch(TASK_ARCH)
    spec = read_spec(arch)
    x, y = spec.task.batch(0, 1, 4)  # training batch 1: its halves hold different answer counts
    counts = (y != -100).sum(1)
    assert counts[:2].sum() != counts[2:].sum()
    Trainer(spec, tmp_path / "one", device="cpu").train()
    proc = torchrun("-m", "cogsim", "run", str(arch), "--out", str(tmp_path / "two"), "--quiet", "--no-viz")
    assert proc.returncode == 0, proc.stderr[-3000:]
    losses = ("loss", "val_loss")
    assert_close(rows(tmp_path / "two", losses), rows(tmp_path / "one", losses))
    accuracy = ("train_accuracy", "task_accuracy")
    assert rows(tmp_path / "two", accuracy) == rows(tmp_path / "one", accuracy)
    assert len(rows(tmp_path / "one", accuracy)) == 7  # 4 training steps, validation at 0, 2 and 4


def test_unsharded_one_process_equals_sharded_one_process(write_arch, tiny_corpus, tmp_path):
    arch = write_arch(ARCH)
    for name, placement in (("sharded", "sharded"), ("device", "device")):
        spec = read_spec(arch, [f"data.path={tiny_corpus}", f"nodes.engram.placement={placement}", "train.steps=3"])
        trainer = Trainer(spec, tmp_path / name, device="cpu")
        trainer.train()
        # the rows of steps 2 and 3 were asked for during the step before (fetched while it ran)
        assert trainer.model.nodes["engram"].prefetcher.stats["ahead"] == 2
    assert rows(tmp_path / "sharded") == rows(tmp_path / "device")


def test_a_batch_the_ranks_cannot_split_is_one_line_error():
    check_batch(8, World(0, 2))
    with pytest.raises(CogsimError, match=r"^train.batch_size 6 is not divisible by the 4 ranks; use a multiple of 4$"):
        check_batch(6, World(1, 4))


def test_world_blocks_devices_and_backends():
    assert [World(r, 4).rows(8) for r in range(4)] == [slice(0, 2), slice(2, 4), slice(4, 6), slice(6, 8)]
    assert World(1, 2).rows(3) == slice(2, 3) and World(3, 4).rows(3) == slice(3, 3)
    assert rank_device(torch.device("cuda"), 3) == torch.device("cuda", 3)
    assert rank_device(torch.device("cpu"), 3) == torch.device("cpu")
    assert (backend_for(torch.device("cuda", 1)), backend_for(torch.device("cpu"))) == ("nccl", "gloo")
