"""Checkpoints: weights and optimizer state in safetensors plus a JSON record, written atomically.

A checkpoint is a folder ``checkpoint/`` holding ``model.safetensors`` (the model's state dict,
including non-parameter state such as HTM synapses), ``optimizer.safetensors`` (AdamW moments, the
components' sparse optimizer state, RNG states) and ``state.json`` (step, config, metrics). It is
first written to ``checkpoint.new/`` and then swapped in by renames, so an interruption at any point
leaves the previous checkpoint readable. Loading reads tensors only (no pickle).

Tensors split by rows across ranks (sharded Engram tables) are saved by every rank into its own
file ``shard-RRRRR-of-NNNNN.safetensors`` beside an index ``shards.json`` (per tensor: global rows and
which file holds which row range). :func:`read_rows` assembles any row range from the files, so a
checkpoint written by N ranks loads into M ranks. Under data parallel, rank 0 prepares the folder,
every rank writes its shard, and rank 0 swaps the folder in after all have finished.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from cogsim.errors import CogsimError

NAME = "checkpoint"


def _tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous, unshared CPU copies (safetensors refuses aliased storage)."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


def optimizer_tensors(opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    out = {}
    for idx, state in opt.state_dict()["state"].items():
        for key, value in state.items():
            out[f"adamw.{idx}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    return out


def load_optimizer_tensors(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith("adamw."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = value
    current = opt.state_dict()
    opt.load_state_dict({"state": state, "param_groups": current["param_groups"]})


def save(run_dir: Path, model_state: dict[str, torch.Tensor], extra: dict[str, torch.Tensor],
         record: dict[str, Any], shards: dict[str, tuple[torch.Tensor, int, int]] | None = None,
         world=None) -> Path:
    """Write a checkpoint into ``run_dir/checkpoint`` atomically; returns its path. ``shards``:
    this rank's row-sharded tensors (name → (rows, first row, global rows)); ``world``: the ranks
    (:class:`cogsim.train.distributed.World`; None: one process). Collective under data parallel:
    every rank calls it; only rank 0's ``model_state``, ``extra`` and ``record`` are written."""
    final, new, old = run_dir / NAME, run_dir / f"{NAME}.new", run_dir / f"{NAME}.old"
    rank, size = (world.rank, world.size) if world is not None else (0, 1)
    if rank == 0:
        shutil.rmtree(new, ignore_errors=True)
        new.mkdir(parents=True)
    if world is not None:
        world.barrier()
    written = [_write_shard(new, shards or {}, rank, size)]
    if rank == 0:
        save_file(_tensors(model_state), str(new / "model.safetensors"))
        save_file(_tensors(extra), str(new / "optimizer.safetensors"))
        (new / "state.json").write_text(json.dumps(record, indent=2, sort_keys=True))
        written += [new / n for n in ("model.safetensors", "optimizer.safetensors", "state.json")]
    ranges = {k: (start, start + len(t), rows) for k, (t, start, rows) in (shards or {}).items()}
    everyone = world.gather_object(ranges) if world is not None else [ranges]
    if rank == 0:
        _write_index(new, everyone)
        written.append(new / INDEX)
    for f in written:  # make the bytes durable before the swap
        if f is not None:
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    if world is not None:
        world.barrier()  # every shard is on disk
    if rank == 0:
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            os.replace(final, old)
        os.replace(new, final)
        shutil.rmtree(old, ignore_errors=True)
    if world is not None:
        world.barrier()  # nobody moves on (or writes again) before the swap
    return final


INDEX = "shards.json"


def _shard_name(rank: int, size: int) -> str:
    return f"shard-{rank:05d}-of-{size:05d}.safetensors"


def _write_shard(folder: Path, shards: dict[str, tuple[torch.Tensor, int, int]], rank: int, size: int) -> Path | None:
    if not shards:
        return None
    path = folder / _shard_name(rank, size)
    save_file(_tensors({k: t for k, (t, _, _) in shards.items()}), str(path))
    return path


def _write_index(folder: Path, ranges: list[dict[str, tuple[int, int, int]]]) -> None:
    index: dict[str, dict] = {}
    for rank, mine in enumerate(ranges):
        for key, (start, stop, rows) in mine.items():
            entry = index.setdefault(key, {"rows": rows, "parts": []})
            entry["parts"].append({"file": _shard_name(rank, len(ranges)), "start": start, "stop": stop})
    (folder / INDEX).write_text(json.dumps({"format": "cogsim-row-shards", "version": 1, "tensors": index},
                                           indent=2, sort_keys=True))


def read_rows(folder: Path, key: str, start: int, stop: int) -> torch.Tensor:
    """Global rows [start, stop) of the row-sharded tensor ``key`` saved in checkpoint ``folder``."""
    from safetensors import safe_open

    try:
        entry = json.loads((folder / INDEX).read_text())["tensors"][key]
    except (OSError, ValueError, KeyError) as e:
        raise CogsimError(f"{folder}: no row shards of {key!r} in this checkpoint ({e}); was it saved "
                          "with another placement?") from None
    if not 0 <= start <= stop <= entry["rows"]:
        raise CogsimError(f"{folder}: rows [{start}, {stop}) of {key!r} asked, the saved tensor has {entry['rows']}")
    pieces, covered = [], start
    for part in sorted(entry["parts"], key=lambda p: p["start"]):
        a, b = max(part["start"], start), min(part["stop"], stop)
        if a >= b:
            continue
        if a != covered:
            break
        try:
            with safe_open(str(folder / part["file"]), framework="pt") as f:
                pieces.append(f.get_slice(key)[a - part["start"]: b - part["start"]])
        except (OSError, ValueError, KeyError) as e:
            raise CogsimError(f"{folder / part['file']}: unreadable shard ({e})") from None
        covered = b
    if covered != stop:
        raise CogsimError(f"{folder}: the shards of {key!r} do not cover rows [{start}, {stop})")
    if not pieces:
        with safe_open(str(folder / entry["parts"][0]["file"]), framework="pt") as f:
            return f.get_slice(key)[0:0]
    return torch.cat(pieces) if len(pieces) > 1 else pieces[0]


def find(run_dir: Path) -> Path | None:
    """The newest complete checkpoint folder in ``run_dir`` (falls back to one left mid-swap)."""
    for name in (NAME, f"{NAME}.old"):
        folder = run_dir / name
        if (folder / "state.json").exists():
            return folder
    return None


def load(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, Any]]:
    try:
        record = json.loads((folder / "state.json").read_text())
        return load_file(str(folder / "model.safetensors")), load_file(str(folder / "optimizer.safetensors")), record
    except (OSError, ValueError, SafetensorError) as e:
        raise CogsimError(f"{folder}: unreadable checkpoint ({str(e).splitlines()[0]})") from None


def restore_model(model: torch.nn.Module, model_state: dict[str, torch.Tensor],
                  extra: dict[str, torch.Tensor], folder: Path | None = None) -> None:
    """Load weights, non-parameter state and each component's sparse state into ``model``
    (row-sharded tensors from the shard files of checkpoint ``folder``)."""
    model.load_state_dict(model_state)
    for name, comp in model.components():
        prefix = f"sparse.{name}."
        part = {k[len(prefix):]: v for k, v in extra.items() if k.startswith(prefix)}
        if part:
            comp.load_sparse_state_dict(part)
        if folder is not None:
            comp.load_row_shards(lambda key, start, stop, name=name: read_rows(folder, f"{name}.{key}", start, stop))
