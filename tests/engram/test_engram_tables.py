"""Table placements: same numbers everywhere, size refusal, exact checkpoint save/restore."""
from __future__ import annotations

import copy

import pytest
import torch

from cogsim.component import Sizes
from cogsim.engram.component import EngramComponent
from cogsim.engram.tables import EngramTable, init_rows
from cogsim.errors import CogsimError
from engram_tables_harness import TinyLM, all_rows, batches, tiny_params, train


def test_init_rows_is_deterministic_normal_and_position_free():
    rows = init_rows(7, torch.arange(4000), 16)
    assert rows.dtype == torch.float32 and rows.shape == (4000, 16)
    assert abs(rows.mean().item()) < 0.02 and abs(rows.std().item() - 1) < 0.02
    some = torch.tensor([3999, 5, 1234])
    assert torch.equal(init_rows(7, some, 16), rows[some])  # depends on the row, not its position
    assert not torch.equal(init_rows(8, some, 16), rows[some])


def test_placements_start_from_the_same_rows(tmp_path):
    tables = [EngramTable(300, 8, "device", seed=2), EngramTable(300, 8, "host", seed=2),
              EngramTable(300, 8, "mmap", seed=2, path=str(tmp_path / "t.f32"))]
    idx = torch.arange(300)
    first = tables[0].read(idx)
    for t in tables[1:]:
        assert torch.equal(t.read(idx), first)
    assert (tmp_path / "t.f32").stat().st_blocks * 512 < 300 * 8 * 4  # sparse: nothing written yet


def test_host_and_mmap_train_exactly_like_device(tmp_path):
    data = batches(2) * 3  # repeated batches: the loss on a batch seen before must drop
    device = TinyLM(placement="device")
    host = TinyLM(placement="host")
    mapped = TinyLM(placement="mmap", mmap_path=str(tmp_path / "engram.f32"))
    ref = train(device, data)
    assert train(host, data, prefetch="before") == ref
    assert train(mapped, data, prefetch="ahead") == ref
    assert ref[4] < ref[2] < ref[0]
    rows = all_rows(device)
    assert torch.equal(all_rows(host), rows) and torch.equal(all_rows(mapped), rows)
    for model in (host, mapped):
        for a, b in zip(model.parameters(), device.parameters()):
            assert torch.equal(a, b)
    assert device.engram.table.rows_written() == host.engram.table.rows_written() > 0


def test_adagrad_host_equals_device():
    data = batches(4, seed=3)
    device, host = TinyLM(placement="device", optimizer="adagrad"), TinyLM(placement="host", optimizer="adagrad")
    assert train(device, data) == train(host, data, prefetch="ahead")
    assert torch.equal(all_rows(device), all_rows(host))


@pytest.mark.parametrize("placement", ["device", "host", "mmap"])
def test_impossible_sizes_are_refused(placement, tmp_path):
    with pytest.raises(CogsimError, match=rf"^engram_vocab_size: {placement} table needs \d+\.\d (TiB|PiB) but only .* "
                                          r"(free RAM|free disk at .*) is available; lower engram_vocab_size"):
        EngramComponent(tiny_params(engram_vocab_size=[10**12, 10**12], n_embed_per_ngram=512,
                                    placement=placement, mmap_path=str(tmp_path / "big" / "t.f32")),
                        Sizes(32, 2, 12, 64))


def test_error_message_is_one_line():
    with pytest.raises(CogsimError) as err:
        EngramTable(10**12, 1024, "host", what="node 'mem'")
    assert "\n" not in str(err.value) and str(err.value).startswith("node 'mem': host table needs 3.6 PiB")


def _checkpoint(model: TinyLM) -> tuple[dict, dict]:
    return copy.deepcopy(model.state_dict()), copy.deepcopy(model.engram.sparse_state_dict())


@pytest.mark.parametrize("placement", ["device", "host"])
def test_checkpoint_resume_is_exact(placement):
    data = batches(6, seed=4)
    model = TinyLM(placement=placement)
    train(model, data[:3])
    dense, sparse = _checkpoint(model)
    if placement == "device":
        assert "engram.table.weight" in dense and set(sparse) == {"opt_state"}
    else:
        assert not any("table" in k for k in dense) and set(sparse) == {"weight", "opt_state"}
    expected = train(model, data[3:])
    resumed = TinyLM(placement=placement, init_std=0.5)  # other rows: everything must come from the checkpoint
    resumed.load_state_dict(dense)
    resumed.engram.load_sparse_state_dict(sparse)
    assert train(resumed, data[3:]) == expected
    assert torch.equal(all_rows(resumed), all_rows(model))


def test_mmap_checkpoint_is_a_reference_and_resume_replays_the_journal(tmp_path):
    data = batches(6, seed=6)
    path = tmp_path / "run" / "engram.f32"
    model = TinyLM(placement="mmap", mmap_path=str(path))
    train(model, data[:3])
    dense, sparse = _checkpoint(model)
    assert set(sparse) == {"mmap_path", "generation", "shape"}
    assert bytes(sparse["mmap_path"].tolist()).decode() == str(path.resolve())
    expected = train(model, data[3:])  # the file moves on past the checkpoint (undo journal kept)
    assert (tmp_path / "run" / "engram.f32.undo").exists()
    after = all_rows(model)
    model.engram.close()
    resumed = TinyLM(placement="mmap", mmap_path=str(path))  # an interrupted run restarts
    resumed.load_state_dict(dense)
    resumed.engram.load_sparse_state_dict(sparse)
    assert not (tmp_path / "run" / "engram.f32.undo").exists()
    assert train(resumed, data[3:]) == expected
    assert torch.equal(all_rows(resumed), after)


def test_mmap_reference_to_a_newer_file_is_refused(tmp_path):
    data = batches(4, seed=7)
    model = TinyLM(placement="mmap", mmap_path=str(tmp_path / "e.f32"))
    train(model, data[:2])
    old = model.engram.sparse_state_dict()
    train(model, data[2:])
    model.engram.sparse_state_dict()  # a newer checkpoint: the journal back to `old` is gone
    with pytest.raises(CogsimError, match="is at update 4 but the checkpoint expects update 2"):
        model.engram.load_sparse_state_dict(old)


def test_storage_dir_moves_a_temporary_mmap_table(tmp_path):
    model = TinyLM(placement="mmap")
    train(model, batches(2))
    rows = all_rows(model)
    temp = model.engram.table.path
    model.engram.attach_run_dir(tmp_path / "runs" / "r1")
    assert model.engram.table.path == tmp_path / "runs" / "r1" / "engram_table.f32"
    assert not temp.exists() and torch.equal(all_rows(model), rows)
    model.engram.close()
    assert model.engram.table.path.exists()  # a file in the run folder is kept


def test_device_table_stays_float32_and_is_not_a_parameter():
    model = TinyLM(placement="device")
    assert not any(p is model.engram.table.weight for p in model.parameters())
    assert model.engram.sparse_parameters() == []
    model.double()
    assert model.engram.table.weight.dtype == torch.float32
    assert model.engram.memory_estimate() == {"device_tables": model.engram.table.nbytes}
